"""SMP: the straight-through gradient, the ramps, SMP-S budgets, the mask manifest, the refusals at
submission, and end-to-end runs with the MLM head (tiny BERT and RoBERTa) and a new head (real MiniLM).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from ppruning.errors import InvalidConfigError, JobCancelled, MaskShapeError, UnsupportedModelError
from ppruning.methods.smp.scores import Ramp, TopKMask, allocate_keep, keep_fraction_at, lambda_at, topk_mask
from ppruning.progress import Progress
from ppruning.run.config import PruneConfig
from ppruning.run.plan import prune_stages, resolve_prune_plan
from ppruning.run.prune import prune
from ppruning.run.resume import FolderResume
from ppruning.units.weight_masks import WeightMasks, check_against, load_weight_masks, save_weight_masks
from tests.support.tiny_models import save_tiny_bert_mlm, save_tiny_roberta_mlm

# --------------------------------------------------------------------------- the mathematics


def test_straight_through_gradient_of_the_scores_is_dl_dw_prime_times_w() -> None:
    torch.manual_seed(0)
    w, x = torch.randn(6, 5), torch.randn(4, 5)
    scores = torch.randn(6, 5, requires_grad=True)
    (x @ (TopKMask.apply(scores, 0.4) * w).T).pow(2).sum().backward()

    w_prime = (topk_mask(scores, 0.4).float() * w).requires_grad_(True)
    (x @ w_prime.T).pow(2).sum().backward()
    assert torch.allclose(scores.grad, w_prime.grad * w)


def test_topk_keeps_floor_of_v_times_n_largest_scores() -> None:
    scores = torch.arange(10.0)
    assert topk_mask(scores, 0.35).tolist() == [False] * 7 + [True] * 3


def test_keep_fraction_ramp_is_cubic_from_one_to_the_target_then_holds() -> None:
    ramp = Ramp(warmup=10, ramp=100)
    assert keep_fraction_at(0, 0.1, ramp) == 1.0 and keep_fraction_at(10, 0.1, ramp) == 1.0
    assert keep_fraction_at(60, 0.1, ramp) == pytest.approx(0.1 + 0.9 / 8)
    assert keep_fraction_at(110, 0.1, ramp) == pytest.approx(0.1)
    assert keep_fraction_at(10_000, 0.1, ramp) == pytest.approx(0.1)


def test_regulariser_weight_ramps_cubically_from_zero_to_its_final_value() -> None:
    ramp = Ramp(warmup=0, ramp=100)
    assert lambda_at(0, 400.0, ramp) == 0.0
    assert lambda_at(50, 400.0, ramp) == pytest.approx(400.0 * 7 / 8)
    assert lambda_at(100, 400.0, ramp) == pytest.approx(400.0) and lambda_at(500, 400.0, ramp) == pytest.approx(400.0)


@pytest.mark.parametrize("seed", range(20))
def test_smp_s_budgets_sum_to_the_target_and_never_pass_one(seed: int) -> None:
    rng = random.Random(seed)
    layers = rng.randint(2, 24)
    weights = [rng.random() ** rng.choice([1, 4, 12]) for _ in range(layers)]
    keep = rng.choice([0.03, 0.1, 0.5, 0.9, 0.97])
    shares = allocate_keep(keep, weights)
    assert sum(shares) == pytest.approx(keep * layers)
    assert all(0.0 <= s <= 1.0 + 1e-12 for s in shares)


def test_smp_s_clamps_a_dominant_layer_and_gives_the_excess_to_the_others_in_proportion() -> None:
    shares = allocate_keep(0.5, [10.0, 1.0, 1.0, 2.0])
    assert shares[0] == 1.0
    assert shares[1] == pytest.approx(shares[2]) and shares[3] == pytest.approx(2 * shares[1])
    assert sum(shares) == pytest.approx(2.0)


# --------------------------------------------------------------------------- the manifest


def _tiny_linear_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))


def test_mask_manifest_round_trips_and_refuses_a_mismatched_model(tmp_path: Path) -> None:
    model = _tiny_linear_model()
    masks = {name: torch.rand_like(p) > 0.6 for name, p in model.named_parameters() if name.endswith("weight")}
    result = WeightMasks(masks, model, manifest={"label_words": ["bad", "good"]})
    manifest = save_weight_masks(result, tmp_path, base_model={"id": "m", "revision": "abc"})
    loaded, read = load_weight_masks(tmp_path)
    assert list(loaded) == manifest["order"] == ["0.weight", "1.weight"]
    assert all(torch.equal(loaded[n], masks[n]) for n in masks)
    assert read["label_words"] == ["bad", "good"] and read["base_model"]["revision"] == "abc"
    assert read["matrices"][0]["shape"] == [7, 5] and 0 < read["density"] < 1
    check_against(loaded, model)

    other = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Linear(8, 3))
    with pytest.raises(MaskShapeError, match=r"0\.weight.*\[7, 5\].*\[8, 5\]"):
        check_against(loaded, other)
    with pytest.raises(MaskShapeError, match="no parameter"):
        check_against(loaded, torch.nn.Sequential(torch.nn.Linear(5, 7)))


# --------------------------------------------------------------------------- submission


@pytest.fixture(scope="module")
def tiny_bert_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert_mlm(tmp_path_factory.mktemp("bert-mlm"))


@pytest.fixture(scope="module")
def tiny_roberta_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_roberta_mlm(tmp_path_factory.mktemp("roberta-mlm"))


def _config(model: Path, task: str = "sst2", target: dict | None = None, **params) -> PruneConfig:
    return PruneConfig.model_validate(
        {
            "model": {"id": str(model)},
            "task": {"name": task},
            "method": "smp",
            "target": target or {"params_reduction": 0.9},
            "params": {"steps": 12, "train_batch_size": 8, **params},
            "device": "cpu",
        }
    )


def test_an_unsupported_model_is_refused_at_submission(tiny_gpt2_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="does not support model type 'gpt2'"):
        resolve_prune_plan(_config(tiny_gpt2_path))


def test_a_multi_token_label_word_is_refused_naming_the_field(tiny_bert_mlm: Path) -> None:
    with pytest.raises(InvalidConfigError) as err:
        resolve_prune_plan(_config(tiny_bert_mlm, label_words=["bad", "fantastic"]))
    assert err.value.field == "params.label_words.1" and "single token" in str(err.value)


def test_a_task_without_labels_and_a_flops_target_are_refused(tiny_bert_mlm: Path) -> None:
    with pytest.raises(InvalidConfigError) as err:
        resolve_prune_plan(_config(tiny_bert_mlm, task="wikitext-2"))
    assert err.value.field == "task.name"
    with pytest.raises(InvalidConfigError, match="removes no dense FLOPs") as err:
        resolve_prune_plan(_config(tiny_bert_mlm, target={"flops_reduction": 0.5}))
    assert err.value.field == "target.flops_reduction"


def test_the_mlm_head_on_a_bare_encoder_is_refused_pointing_to_a_new_head(tiny_bert_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match='head: "new"') as err:
        resolve_prune_plan(_config(tiny_bert_path))
    assert err.value.field == "params.head"


def test_a_teacher_with_hidden_state_matching_is_refused_at_submission(tiny_bert_mlm: Path) -> None:
    """SMP's loss distils logits only; hidden_weight > 0 used to pass submission and fail at step 1."""
    teacher = {"teacher": {"id": str(tiny_bert_mlm)}, "hidden_weight": 1.0}
    with pytest.raises(InvalidConfigError, match="logits only") as err:
        resolve_prune_plan(_config(tiny_bert_mlm, distill=teacher))
    assert err.value.field == "params.distill.hidden_weight"
    resolve_prune_plan(_config(tiny_bert_mlm, distill={**teacher, "hidden_weight": 0.0}))  # logits only: accepted


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("which", ["bert", "roberta"])
def test_mlm_head_run_writes_bit_masks_manifest_and_a_masked_dense_checkpoint(
    which: str, tiny_bert_mlm: Path, tiny_roberta_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForMaskedLM

    model_dir = tiny_bert_mlm if which == "bert" else tiny_roberta_mlm
    config = _config(model_dir, variant="smp-s")
    assert prune_stages(config) == ("load_model", "load_data", "train", "select", "materialise", "write")
    result = prune(config, tmp_path / "out")
    masks, manifest = load_weight_masks(result.output_dir)
    assert manifest["label_words"] == ["terrible", "great"] and manifest["head"] == "mlm"
    assert len(masks) == 2 * 6 and manifest["base_model"]["id"] == str(model_dir)
    assert manifest["density"] == pytest.approx(0.1, abs=0.01)

    reloaded = AutoModelForMaskedLM.from_pretrained(result.model_dir)  # plain transformers
    params = dict(reloaded.named_parameters())
    for name, mask in masks.items():
        assert torch.count_nonzero(params[name][~mask]) == 0
    report = result.report
    assert report["speed"]["dense_speedup"] == "none" and report["speed"]["note"].startswith("none")
    assert report["weights"]["per_type"]["ffn_in"] == pytest.approx(0.1, abs=0.01)
    assert len(report["weights"]["per_layer"]) == 2
    assert report["details"]["training"]["curve"][-1]["step"] == 12
    assert json.loads((result.output_dir / "report.json").read_text())["kind"] == "unstructured"
    from huggingface_hub import ModelCard

    card = ModelCard.load(result.model_dir / "README.md")  # the model card of an unstructured prune
    assert {"unstructured-pruning", "pruning-method-smp"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "fill-mask" and "AutoModelForMaskedLM.from_pretrained(" in card.text
    assert "trust_remote_code" not in card.text and "load_pruned" not in card.text
    assert "Not measured: unstructured sparsity leaves every matrix dense-shaped" in card.text


class _StopAt(Progress):
    def __init__(self, step: int) -> None:
        self.stop, self.seen = step, 0

    def update(self, step: int, total: int | None = None, **metrics) -> None:
        self.seen = step

    def checkpoint(self) -> None:
        if self.seen >= self.stop:
            raise JobCancelled("stop")


def test_a_stopped_run_resumes_from_its_last_saved_step(
    tiny_bert_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    config = _config(tiny_bert_mlm, resume_every_s=1e-6)
    store = FolderResume(tmp_path / "resume")
    with pytest.raises(JobCancelled):
        prune(config, tmp_path / "a", _StopAt(7), resume=store)
    assert store.load()["step"] == 7
    result = prune(config, tmp_path / "b", resume=store)
    assert result.report["details"]["training"]["resumed_from_step"] == 7


@pytest.mark.slow
def test_new_head_on_real_minilm_trains_only_scores_and_classifier(
    minilm_path: Path, task_datasets: Path, tmp_path: Path
) -> None:
    from transformers import AutoModel, AutoModelForSequenceClassification

    config = _config(minilm_path, head="new", steps=6, target={"params_reduction": 0.5})
    result = prune(config, tmp_path / "out")
    masks, manifest = load_weight_masks(result.output_dir)
    assert manifest["head"] == "new" and manifest["label_words"] is None and len(masks) == 6 * 6
    pruned = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    dense = AutoModel.from_pretrained(minilm_path)
    pruned_params = dict(pruned.bert.named_parameters())
    for name, p in dense.named_parameters():
        mask = masks.get(f"bert.{name}")
        expected = p * mask if mask is not None else p  # frozen: only the masks changed the encoder
        assert torch.equal(pruned_params[name], expected), name
    assert result.report["achieved"]["density_pruned_part"] == pytest.approx(0.5, abs=0.01)


def test_magnitude_baseline_keeps_the_largest_weights_and_fine_tuning_leaves_pruned_ones_at_zero(
    tiny_bert_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForMaskedLM

    config = _config(tiny_bert_mlm).model_copy(update={"method": "magnitude-unstructured"})
    result = prune(config, tmp_path / "out")
    masks, manifest = load_weight_masks(result.output_dir)
    assert manifest["method"] == "magnitude-unstructured" and manifest["density"] == pytest.approx(0.1, abs=0.01)
    dense = dict(AutoModelForMaskedLM.from_pretrained(tiny_bert_mlm).named_parameters())
    kept = torch.cat([dense[n].detach().abs()[m] for n, m in masks.items()])
    pruned = torch.cat([dense[n].detach().abs()[~m] for n, m in masks.items()])
    assert kept.min() >= pruned.max()  # one global threshold
    tuned = dict(AutoModelForMaskedLM.from_pretrained(result.model_dir).named_parameters())
    assert all(torch.count_nonzero(tuned[n][~m]) == 0 for n, m in masks.items())
    assert any(not torch.equal(tuned[n][m], dense[n][m]) for n, m in masks.items())  # the kept weights trained


def test_fine_tuning_an_smp_checkpoint_keeps_its_pruned_weights_at_zero(
    tiny_bert_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    from ppruning import FinetuneConfig, finetune_model

    pruned = prune(_config(tiny_bert_mlm, steps=4), tmp_path / "prune")
    config = FinetuneConfig.model_validate(
        {
            "model": {"id": str(pruned.model_dir)},
            "task": {"name": "sst2"},
            "epochs": 1,
            "batch_size": 16,
            "learning_rate": 1e-2,
            "device": "cpu",
        }
    )
    tuned = finetune_model(config, tmp_path / "ft")
    masks, _ = load_weight_masks(tuned.model_dir)  # the masks travel with the fine-tuned checkpoint
    from transformers import AutoModelForSequenceClassification

    params = dict(AutoModelForSequenceClassification.from_pretrained(tuned.model_dir).named_parameters())
    assert all(torch.count_nonzero(params[n][~m]) == 0 for n, m in masks.items())


def test_the_new_head_starts_at_the_logistic_regression_fit_of_the_frozen_features(tiny_bert_path: Path) -> None:
    """The probe start equals scikit-learn's multinomial logistic regression (C = 1) on the same features."""
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification

    from ppruning.methods.smp.classifier import final_classifier_linear, probe_start

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_path, num_labels=3)
    g = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(5, model.config.vocab_size, (16, 12), generator=g),
            "attention_mask": torch.ones(16, 12, dtype=torch.long),
            "labels": torch.randint(0, 3, (16,), generator=g),
        }
        for _ in range(4)
    ]
    with torch.no_grad():
        model.eval()
        features = torch.cat(
            [model.bert(**{k: v for k, v in b.items() if k != "labels"}).pooler_output for b in batches]
        )
    labels = torch.cat([b["labels"] for b in batches])
    model.train()
    fit = probe_start(model, batches)
    assert model.training  # the caller's mode is restored
    linear = final_classifier_linear(model)
    assert linear is model.classifier
    with torch.no_grad():
        ours = torch.softmax(features @ linear.weight.T + linear.bias, -1)
    reference = LogisticRegression(C=1.0, max_iter=5000, tol=1e-10).fit(features.numpy(), labels.numpy())
    assert torch.allclose(ours, torch.tensor(reference.predict_proba(features.numpy()), dtype=ours.dtype), atol=2e-3)
    assert fit["rows"] == 64 and 0.0 <= fit["train_accuracy"] <= 1.0


def test_a_magnitude_score_start_makes_the_first_masks_magnitude_pruning(tiny_bert_mlm: Path) -> None:
    from transformers import AutoModelForMaskedLM

    from ppruning.methods.smp.method import Scores
    from ppruning.methods.smp.scores import prunable_linears

    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_mlm)
    dense = {name: p.detach().clone() for name, p in model.named_parameters()}
    linears = prunable_linears(model)
    scores = Scores(linears, 0.0, "smp-l", 1.0, start="magnitude")
    scores.set_keep(0.3)
    for lin, scored in zip(linears, scores.params, strict=True):
        assert torch.equal(scored.mask(), topk_mask(dense[lin.name].abs(), 0.3)), lin.name
    constant = Scores(prunable_linears(AutoModelForMaskedLM.from_pretrained(tiny_bert_mlm)), 0.0, "smp-l", 1.0)
    assert all(torch.count_nonzero(s.scores) == 0 for s in constant.params)  # the paper's start
