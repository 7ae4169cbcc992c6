"""Collection: real tokens only, seeded positions, only holders run, padding-independent, O(samples) memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from ppruning.arch import get_adapter
from ppruning.methods.ppruning.collect import collect, sample_positions
from tests.support.tiny_models import CORPUS


@pytest.fixture(scope="module")
def bert(tiny_bert_path: Path):
    model = AutoModel.from_pretrained(tiny_bert_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_path)
    return model, tokenizer


def _examples(tokenizer, n: int = 40, padded: bool = False) -> list[dict]:
    texts = [f"{CORPUS[i % len(CORPUS)]} " + " ".join(["good"] * (i % 7)) for i in range(n)]
    enc = tokenizer(texts, padding="max_length" if padded else False, max_length=40, truncation=True)
    return [{k: enc[k][i] for k in enc} for i in range(n)]


def test_sampled_positions_are_real_tokens_only(bert) -> None:
    _, tok = bert
    examples = _examples(tok, padded=True)
    sample = sample_positions(examples, 120, seed=0)
    assert len(sample) == 120
    for e, t in zip(sample.example, sample.token, strict=True):
        assert examples[e]["attention_mask"][t] == 1
    pooled = sum(sum(ex["attention_mask"]) for ex in examples)
    assert sample.pooled_real_tokens == pooled
    assert len(set(zip(sample.example.tolist(), sample.token.tolist(), strict=True))) == 120  # distinct


def test_same_seed_same_positions_other_seed_other_positions(bert) -> None:
    _, tok = bert
    examples = _examples(tok)
    a, b, c = (sample_positions(examples, 30, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.example, b.example) and np.array_equal(a.token, b.token)
    assert not (np.array_equal(a.example, c.example) and np.array_equal(a.token, c.token))


def test_fewer_real_tokens_than_requested_takes_them_all(bert) -> None:
    _, tok = bert
    examples = _examples(tok, n=2)
    sample = sample_positions(examples, 10_000, seed=0)
    assert len(sample) == sum(len(ex["input_ids"]) for ex in examples)


def test_only_examples_holding_a_sampled_position_are_run(bert) -> None:
    model, tok = bert
    examples = _examples(tok, n=60)
    rows_run = []
    handle = model.register_forward_pre_hook(
        lambda m, a, kw: rows_run.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        acts = collect(model, get_adapter(model), examples, sampling_tokens=8, seed=3, batch_size=4)
    finally:
        handle.remove()
    holders = len(np.unique(acts.sample.example))
    assert sum(rows_run) == holders == acts.examples_run <= 8
    assert len(rows_run) == acts.batches_run
    # memory is O(sampled tokens): buffers hold exactly S rows per layer
    assert all(h.shape == (8, 32) for h in acts.heads) and all(n.shape == (8, 64) for n in acts.neurons)


def test_activations_equal_a_direct_forward_and_ignore_padding(bert) -> None:
    model, tok = bert
    unpadded = _examples(tok, n=30)
    padded = _examples(tok, n=30, padded=True)
    adapter = get_adapter(model)
    one = collect(model, adapter, unpadded, sampling_tokens=25, seed=1, batch_size=1)
    many = collect(model, adapter, padded, sampling_tokens=25, seed=1, batch_size=16)
    assert np.array_equal(one.sample.example, many.sample.example)
    for layer in range(3):
        assert torch.allclose(one.heads[layer], many.heads[layer], atol=1e-5)
        assert torch.allclose(one.neurons[layer], many.neurons[layer], atol=1e-5)
    # and they are the right rows: compare with a plain forward of one example
    k = 0
    e, t = int(one.sample.example[k]), int(one.sample.token[k])
    seen = {}
    h = adapter.neuron_output_module(2).register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    with torch.no_grad():
        model(**{key: torch.tensor([v]) for key, v in unpadded[e].items()})
    h.remove()
    assert torch.allclose(seen["x"][0, t], one.neurons[2][k], atol=1e-6)


def test_gpt2_real_token_activations_ignore_right_padding(tiny_gpt2_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    texts = [CORPUS[i % len(CORPUS)] + " the" * (i % 5) for i in range(20)]
    rows = [dict(tok(t)) for t in texts]
    adapter = get_adapter(model)
    one = collect(model, adapter, rows, sampling_tokens=30, seed=2, batch_size=1, pad_token_id=tok.pad_token_id)
    many = collect(model, adapter, rows, sampling_tokens=30, seed=2, batch_size=20, pad_token_id=tok.pad_token_id)
    for layer in range(3):
        assert torch.allclose(one.heads[layer], many.heads[layer], atol=1e-5)
        assert torch.allclose(one.neurons[layer], many.neurons[layer], atol=1e-5)


@pytest.mark.parametrize("sampling_tokens", [40, 1])
def test_opt_collected_rows_equal_a_direct_forward(tmp_path: Path, sampling_tokens: int) -> None:
    """OPT runs its FFN on flattened [batch * tokens, width] states; the rows must still be the sampled tokens'.

    One sampled token per batch (``sampling_tokens=1``) once filled a neuron's row with a single value.
    """
    from transformers import AutoModelForCausalLM

    from tests.support.tiny_models import save_tiny_opt

    path = save_tiny_opt(tmp_path / "opt")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    rows = [dict(tok(CORPUS[i % len(CORPUS)] + " the" * (i % 5))) for i in range(12)]
    adapter = get_adapter(model)
    acts = collect(
        model, adapter, rows, sampling_tokens=sampling_tokens, seed=4, batch_size=4, pad_token_id=tok.pad_token_id
    )
    seen: dict[tuple[str, int], torch.Tensor] = {}

    def keep(kind: str, layer: int):
        return lambda module, args: seen.__setitem__((kind, layer), args[0].reshape(-1, args[0].shape[-1]))

    handles = [adapter.head_output_module(i).register_forward_pre_hook(keep("head", i)) for i in range(3)]
    handles += [adapter.neuron_output_module(i).register_forward_pre_hook(keep("neuron", i)) for i in range(3)]
    try:
        for k in range(len(acts.sample)):
            e, t = int(acts.sample.example[k]), int(acts.sample.token[k])
            with torch.no_grad():
                model(**{key: torch.tensor([v]) for key, v in rows[e].items()})  # one example: row t is token t
            for layer in range(3):
                assert torch.allclose(seen["head", layer][t], acts.heads[layer][k], atol=1e-5)
                assert torch.allclose(seen["neuron", layer][t], acts.neurons[layer][k], atol=1e-5)
    finally:
        for h in handles:
            h.remove()


def test_skipping_the_first_token_never_samples_it_and_draws_from_the_rest(bert) -> None:
    _, tok = bert
    examples = _examples(tok, padded=True)
    sample = sample_positions(examples, 10_000, seed=0, skip_first=1)
    firsts = {(i, int(np.flatnonzero(ex["attention_mask"])[0])) for i, ex in enumerate(examples)}
    taken = set(zip(sample.example.tolist(), sample.token.tolist(), strict=True))
    assert not taken & firsts
    assert len(taken) == sum(sum(ex["attention_mask"]) for ex in examples) - len(examples)


@pytest.mark.parametrize(
    ("fixture", "first_token", "expected"),
    [
        ("tiny_llama_path", None, "included"),
        ("tiny_bert_path", None, "included"),
        ("tiny_llama_path", "exclude", "excluded"),
        ("tiny_gpt2_path", "exclude", "excluded"),
    ],
)
def test_ppruning_samples_the_first_token_unless_told_to_leave_it_out(
    fixture: str,
    first_token: str | None,
    expected: str,
    request: pytest.FixtureRequest,
    task_datasets: Path,
    tmp_path: Path,
) -> None:
    """The paper's sample by default; ``exclude`` leaves each sequence's first token (a decoder's sink) out."""
    from ppruning.run.config import PruneConfig
    from ppruning.run.prune import prune

    path = request.getfixturevalue(fixture)
    task = "wikitext-2" if fixture != "tiny_bert_path" else "sst2"
    config = PruneConfig.model_validate(
        {
            "model": {"id": str(path)},
            "task": {"name": task},
            "method": "ppruning",
            "target": {"params_reduction": 0.2},
            "params": {"first_token": first_token} if first_token else {},
            "sampling": {"max_instances": 16, "sampling_tokens": 40, "max_length": 32},
            "measure": False,
        }
    )
    result = prune(config, tmp_path / "out")
    assert result.report["details"]["collection"]["first_token"] == expected


def test_a_decoder_runs_each_example_only_to_its_last_sampled_token(tiny_gpt2_path: Path) -> None:
    """A causal model's row at a token reads no later token: the rest of the example is not run, and the rows
    equal a forward of the whole example."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    rows = [dict(tok(" ".join([CORPUS[i % len(CORPUS)]] * 3))) for i in range(10)]
    adapter = get_adapter(model)
    widths: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, a, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    try:
        acts = collect(model, adapter, rows, sampling_tokens=6, seed=5, batch_size=1, pad_token_id=tok.eos_token_id)
    finally:
        handle.remove()
    last = {}
    for e, t in zip(acts.sample.example.tolist(), acts.sample.token.tolist(), strict=True):
        last[e] = max(last.get(e, 0), t + 1)
    assert sorted(widths) == sorted(last.values())
    assert sum(widths) < sum(len(rows[e]["input_ids"]) for e in last)  # less than the whole examples
    seen = {}
    h = adapter.neuron_output_module(2).register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    try:
        for k in range(len(acts.sample)):
            e, t = int(acts.sample.example[k]), int(acts.sample.token[k])
            with torch.no_grad():
                model(**{key: torch.tensor([v]) for key, v in rows[e].items()})
            assert torch.allclose(seen["x"][0, t], acts.neurons[2][k], atol=1e-5)
    finally:
        h.remove()


def test_an_encoder_runs_each_example_whole(bert) -> None:
    from ppruning.methods.ppruning.collect import run_lengths

    _, tok = bert
    examples = _examples(tok, n=12)
    sample = sample_positions(examples, 5, seed=0)
    lengths = run_lengths(examples, sample, causal=False)
    assert lengths == {int(e): len(examples[int(e)]["input_ids"]) for e in np.unique(sample.example)}
