"""Distillation of a causal LM: the KL counts the positions the hard loss scores, in chunks, and only
from a teacher that reads text as the student does. Tiny random Llama decoders throughout."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from ppruning.errors import InvalidConfigError
from ppruning.finetune.distill_trainer import DistillTrainer
from ppruning.model.refs import ModelRef
from ppruning.recovery.distill import (
    DistillConfig,
    causal_lm_positions,
    check_teacher_tokenizer,
    load_teacher,
    token_kl,
)

T = 2.0


def _decoders(path, seed: int = 0, sharpness: float = 1.0) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    """(student, teacher): the tiny Llama's saved weights, and a differently initialised teacher whose
    output layer is scaled by ``sharpness`` (a random decoder's next-token distribution is nearly flat)."""
    student = LlamaForCausalLM.from_pretrained(path)
    torch.manual_seed(seed)
    teacher = LlamaForCausalLM(student.config).eval().requires_grad_(False)
    teacher.lm_head.weight.mul_(sharpness)
    return student, teacher


def _batch(vocab: int, lengths: tuple[int, ...] = (9, 5), pad: int = 1, seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded rows with LM labels (-100 on the padding), as the collator builds them."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(2, vocab, (n,), generator=g)
        mask[i, :n] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _trainer_loss(student, teacher, batch, **config: float) -> torch.Tensor:
    """The loss :class:`DistillTrainer` computes on ``batch`` (its own method, without a Trainer around it)."""
    distill = DistillConfig(teacher=ModelRef(id="teacher"), temperature=T, **config)
    return DistillTrainer.compute_loss(SimpleNamespace(teacher=teacher, distill=distill), student, batch)


def _kl_per_row(student, teacher, ids: torch.Tensor) -> torch.Tensor:
    """The soft term of one unpadded row, computed directly: T^2 KL at each position but the last, averaged."""
    s = F.log_softmax(student(input_ids=ids[None]).logits[0, :-1] / T, dim=-1)
    t = F.log_softmax(teacher(input_ids=ids[None]).logits[0, :-1] / T, dim=-1)
    return (t.exp() * (t - s)).sum(-1).mean() * T * T


def test_kl_to_the_teacher_falls_after_a_few_distillation_steps(tiny_llama_path) -> None:
    student, teacher = _decoders(tiny_llama_path, sharpness=5.0)
    batch = _batch(student.config.vocab_size, (12, 7, 10))
    positions = causal_lm_positions(batch["labels"], batch["attention_mask"])

    def kl() -> float:
        with torch.no_grad():
            s, t = student(**batch).logits, teacher(**batch).logits
        return token_kl(s, t, T, positions).item()

    before = kl()
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    student.train()
    for _ in range(10):
        optimizer.zero_grad()
        _trainer_loss(student, teacher, batch, alpha=1.0).backward()
        optimizer.step()
    student.eval()
    assert kl() < 0.7 * before


def test_padding_and_ignored_labels_do_not_change_the_loss(tiny_llama_path) -> None:
    """A padded batch's soft term is the mean over the scored positions of its rows, each computed alone;
    what stands in the padding, and the student's logits where the next label is -100, change nothing."""
    student, teacher = _decoders(tiny_llama_path)
    student.eval()
    batch = _batch(student.config.vocab_size, (9, 5))
    rows = [batch["input_ids"][i, : int(batch["attention_mask"][i].sum())] for i in range(2)]
    expected = (_kl_per_row(student, teacher, rows[0]) * 8 + _kl_per_row(student, teacher, rows[1]) * 4) / 12
    loss = _trainer_loss(student, teacher, batch, alpha=1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)

    other_padding = {**batch, "input_ids": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 17)}
    assert _trainer_loss(student, teacher, other_padding, alpha=1.0).item() == pytest.approx(loss.item(), rel=1e-5)

    ignored = batch["labels"].clone()
    ignored[0, 6:] = -100  # the last three tokens of row 0 are not scored: positions 5..8 predict them
    positions = causal_lm_positions(ignored, batch["attention_mask"])
    assert positions[0].tolist() == [True] * 5 + [False] * 4 and positions[1].tolist() == [True] * 4 + [False] * 5
    with torch.no_grad():
        s, t = student(**batch).logits, teacher(**batch).logits
    noisy = s.clone()
    noisy[~positions] += 50 * torch.randn_like(noisy[~positions])
    assert token_kl(noisy, t, T, positions).item() == pytest.approx(token_kl(s, t, T, positions).item(), rel=1e-6)


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_the_chunked_kl_equals_the_direct_one_in_value_and_gradient(chunk: int) -> None:
    torch.manual_seed(0)
    student = torch.randn(3, 7, 50, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(3, 7, 50, dtype=torch.float64)
    positions = torch.rand(3, 7) > 0.4
    chunked = token_kl(student, teacher, T, positions, chunk=chunk)
    (grad,) = torch.autograd.grad(chunked, student)

    s = F.log_softmax(student[positions] / T, dim=-1)
    t = F.log_softmax(teacher[positions] / T, dim=-1)
    direct = F.kl_div(s, t, reduction="batchmean", log_target=True) * T * T
    (expected,) = torch.autograd.grad(direct, student)
    assert chunked.item() == pytest.approx(direct.item(), rel=1e-10)
    assert torch.allclose(grad, expected, atol=1e-12)


def test_the_kl_keeps_no_softmax_of_the_whole_batch_for_the_backward() -> None:
    """Autograd holds the two logits tensors (they exist anyway) and an index, nothing of their size more."""
    student = torch.randn(4, 64, 300, requires_grad=True)
    teacher = torch.randn(4, 64, 300)
    saved: list[torch.Tensor] = []

    def pack(x: torch.Tensor) -> torch.Tensor:
        saved.append(x)
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        loss = token_kl(student, teacher, T, torch.ones(4, 64, dtype=torch.bool), chunk=16)
    loss.backward()
    inputs = {student.data_ptr(), teacher.data_ptr()}
    big = [x for x in saved if x.numel() >= 16 * 300 and x.data_ptr() not in inputs]
    assert not big, [tuple(x.shape) for x in big]


def test_no_scored_position_gives_a_zero_term_that_still_backpropagates() -> None:
    student = torch.randn(2, 3, 5, requires_grad=True)
    loss = token_kl(student, torch.randn(2, 3, 5), T, torch.zeros(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(student.grad, torch.zeros_like(student))


# --------------------------------------------------------------------------- one tokenizer


def _with_tokenizer_of(model_path, tokenizer_path, folder):
    """``model_path``'s config and weights beside ``tokenizer_path``'s tokenizer files."""
    shutil.copytree(model_path, folder)
    for f in folder.iterdir():
        if "token" in f.name or f.name in ("vocab.txt", "vocab.json", "merges.txt"):
            f.unlink()
    for f in tokenizer_path.iterdir():
        if "token" in f.name or f.name in ("vocab.txt", "vocab.json", "merges.txt"):
            shutil.copy(f, folder / f.name)
    return folder


def test_a_teacher_with_another_tokenizer_is_refused_naming_the_field(tiny_llama_path, tiny_bert_path, tmp_path):
    from ppruning.tasks import get_task

    other = _with_tokenizer_of(tiny_llama_path, tiny_bert_path, tmp_path / "llama-with-bert-tokenizer")
    with pytest.raises(InvalidConfigError, match="another tokenizer") as err:
        check_teacher_tokenizer(ModelRef(id=str(tiny_llama_path)), ModelRef(id=str(other)))
    assert err.value.field == "distill.teacher"

    from ppruning.model.loading import load_tokenizer

    config = DistillConfig(teacher=ModelRef(id=str(other)))
    with pytest.raises(InvalidConfigError, match="another tokenizer") as err:
        load_teacher(config, get_task("wikitext-2"), outputs=None, student_tokenizer=load_tokenizer(tiny_llama_path))
    assert err.value.field == "distill.teacher"

    same = load_teacher(
        DistillConfig(teacher=ModelRef(id=str(tiny_llama_path))),
        get_task("wikitext-2"),
        outputs=None,
        student_tokenizer=load_tokenizer(tiny_llama_path),
    )
    assert not same.training


def test_one_vocabulary_split_otherwise_is_another_tokenizer(tiny_bert_path) -> None:
    """Cased and uncased readings of one vocabulary give different ids for the same text."""
    from transformers import BertTokenizerFast

    vocab = str(tiny_bert_path / "vocab.txt")
    lower = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    cased = BertTokenizerFast(vocab=vocab, do_lower_case=False)
    check_teacher_tokenizer(lower, BertTokenizerFast(vocab=vocab, do_lower_case=True))
    with pytest.raises(InvalidConfigError, match="split into different ids"):
        check_teacher_tokenizer(lower, cased, field="finetune.distill.teacher")


# --------------------------------------------------------------------------- the whole fine-tuning run


def test_distilling_a_pruned_decoder_starts_from_the_checkpoints_own_weights(task_datasets, tiny_llama_path, tmp_path):
    """A pruned checkpoint whose down projections were changed after the cut (as a refit changes them) is
    fine-tuned with the dense decoder as teacher: training starts from the saved weights, not the dense ones."""
    from ppruning import load_pruned
    from ppruning.finetune import finetune
    from ppruning.model.checkpoint import save_pruned
    from ppruning.model.loading import load_tokenizer
    from ppruning.model.surgery import prune_model
    from ppruning.run.config import FinetuneConfig
    from ppruning.tasks.refs import TaskRef
    from tests.library.arch_cases import random_masks

    model = LlamaForCausalLM.from_pretrained(tiny_llama_path).eval()
    prune_model(model, random_masks(model, 3))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.mul_(3.0)
    save_pruned(model, load_tokenizer(tiny_llama_path), tmp_path / "pruned", extra={"method": "test"})

    teacher = DistillConfig(teacher=ModelRef(id=str(tiny_llama_path)), alpha=1.0)
    config = FinetuneConfig(
        model=ModelRef(id=str(tmp_path / "pruned")), task=TaskRef(name="wikitext-2"), distill=teacher,
        epochs=1, batch_size=4, learning_rate=1e-9, max_length=24, max_train_samples=8, device="cpu",
    )  # fmt: skip
    result = finetune(config, tmp_path / "out")
    tuned = load_pruned(result.model_dir)
    for ours, saved in zip(tuned.model.layers, model.model.layers, strict=True):
        assert torch.allclose(ours.mlp.down_proj.weight, saved.mlp.down_proj.weight, atol=1e-6)
    assert result.report["distill"]["alpha"] == 1.0 and result.report["final_train_loss"] > 0


def test_a_half_precision_student_is_compared_in_float32_a_chunk_at_a_time() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 40), torch.randn(2, 5, 40)
    half = student.to(torch.bfloat16).requires_grad_(True)
    loss = token_kl(half, teacher, T, chunk=3)
    loss.backward()
    assert loss.dtype == torch.bfloat16 and half.grad.dtype == torch.bfloat16
    assert loss.item() == pytest.approx(token_kl(half.detach().float(), teacher, T).item(), rel=1e-2)
