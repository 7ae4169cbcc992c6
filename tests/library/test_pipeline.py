"""prune() end to end: every artifact, reload equals the masked full model, fail fast, reproducible."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from ppruning import load_pruned
from ppruning.arch import get_adapter
from ppruning.errors import InfeasibleTargetError, ModelLoadError, UnknownTaskError, UnsupportedModelError
from ppruning.model.mask_hooks import apply_masks
from ppruning.progress import Progress
from ppruning.recovery.compensation import COMPENSATION_FILE, apply_refit, load_refit
from ppruning.run.config import PruneConfig
from ppruning.run.plan import validate_prune_config
from ppruning.run.prune import prune
from ppruning.units.masks import load_masks
from tests.support.reviews import reviews_task

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"
REVIEWS = reviews_task()
CORPUS = {"name": "causal-lm", "data_files": {"train": str(FIXTURES / "corpus_train.txt")}}
ARTIFACTS = ("head_mask.pt", "neuron_mask.pt", "masks.safetensors", "report.json", "model/pruning.json")


class Stages(Progress):
    def __init__(self) -> None:
        self.stages: list[str] = []

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        self.stages.append(stage)


def _config(model: Path, task: dict, target: float = 0.2, **params) -> PruneConfig:
    params = {"sampling_tokens": 40, "lambda_val": 1, **params}
    return PruneConfig(model={"id": str(model)}, task=task, target={"flops_reduction": target}, params=params, seed=11)


def _assert_reload_equals_masked(result_dir: Path, full: torch.nn.Module, head: str, vocab: int) -> None:
    pruned = load_pruned(result_dir / "model", head=head)
    masks = load_masks(result_dir)
    if (result_dir / COMPENSATION_FILE).is_file():  # the refit projections, then the masks: the checkpoint
        full = copy.deepcopy(full)
        apply_refit(full, get_adapter(full), masks, load_refit(result_dir))
    ids = torch.randint(0, vocab, (2, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), apply_masks(full.eval(), masks):
        expected = full(input_ids=ids)[0]
    with torch.no_grad():
        got = pruned(input_ids=ids)[0]
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in full.parameters())


def test_prune_bert_writes_every_artifact_and_reloads_equal_to_masked(tiny_bert_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    stages = Stages()
    result = prune(_config(tiny_bert_path, REVIEWS), tmp_path / "out", stages)
    for name in ARTIFACTS:
        assert (tmp_path / "out" / name).is_file(), name
    assert stages.stages == [
        "load_model",
        "load_data",
        "collect",
        "cluster",
        "select",
        "outlier_units",
        "compensate",
        "materialise",
        "measure",
        "write",
    ]
    assert type(load_pruned(result.model_dir)).__name__ == "BertForSequenceClassification"  # the task's head
    full = AutoModel.from_pretrained(tiny_bert_path)
    _assert_reload_equals_masked(result.output_dir, full, "base", full.config.vocab_size)

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert report["method"] == "ppruning" and report["seed"] == 11
    assert report["sampling"]["sampling_tokens"] == 40 and report["sampling"]["max_instances"] == 3000
    assert report["sampling"]["used"] is True and report["params"]["allocation"] == "global"
    assert [la["heads_kept"] for la in report["layers"]] == load_masks(result.output_dir).head_counts()
    assert report["cost"]["after"]["flops"]["pruned_part"] < report["cost"]["before"]["flops"]["pruned_part"]
    assert report["achieved"]["flops_reduction_pruned_part"] >= 0.2
    assert set(report["timings_s"]) >= {"load_model", "collect", "cluster", "materialise"}
    assert report["memory"]["peak_host_rss_bytes"] > 0
    assert {"ppruning", "torch", "transformers"} <= set(report["versions"])
    assert report["details"]["collection"]["examples_run"] <= 40
    # each unit type loses its share of the budget, overshooting by less than one unit's cost
    from ppruning.arch import get_adapter
    from ppruning.units.cost import unit_costs

    costs = unit_costs(get_adapter(full).shape(), "flops", report["budget"]["seq_len"])
    before, after, budget = report["cost"]["before"]["flops"], report["cost"]["after"]["flops"], report["budget"]
    for part, share, unit in (("attention", "head_removal", costs.head[0]), ("ffn", "neuron_removal", costs.neuron[0])):
        removed = before[part] - after[part]
        assert budget[share] - 1e-6 <= removed < budget[share] + unit


def test_prune_gpt2_causal_lm_reloads_equal_to_masked(tiny_gpt2_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = prune(_config(tiny_gpt2_path, CORPUS, target=0.15), tmp_path / "out")
    full = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    _assert_reload_equals_masked(result.output_dir, full, "causal-lm", full.config.vocab_size)


def test_prune_llama_prunes_whole_kv_groups(tiny_llama_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result = prune(_config(tiny_llama_path, CORPUS, target=0.15), tmp_path / "out")
    masks = load_masks(result.output_dir)
    assert masks.head_mask.shape == (3, 2)  # 2 KV groups of 2 query heads
    full = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    _assert_reload_equals_masked(result.output_dir, full, "causal-lm", full.config.vocab_size)


def test_same_seed_gives_identical_masks(tiny_bert_path: Path, tmp_path: Path) -> None:
    a = prune(_config(tiny_bert_path, REVIEWS), tmp_path / "a")
    b = prune(_config(tiny_bert_path, REVIEWS), tmp_path / "b")
    ma, mb = load_masks(a.output_dir), load_masks(b.output_dir)
    assert torch.equal(ma.head_mask, mb.head_mask) and torch.equal(ma.neuron_mask, mb.neuron_mask)


def test_infeasible_target_fails_before_any_forward_pass(tiny_bert_path: Path, tmp_path: Path) -> None:
    config = _config(tiny_bert_path, REVIEWS, target=0.9)
    with pytest.raises(InfeasibleTargetError) as err:
        validate_prune_config(config)
    assert "at most" in str(err.value) and f"{err.value.largest_feasible:.4f}" in str(err.value)
    stages = Stages()
    with pytest.raises(InfeasibleTargetError):
        prune(config, tmp_path / "out", stages)
    assert "collect" not in stages.stages and not (tmp_path / "out").exists()


def test_validation_names_unknown_task_bad_model_and_unsupported_type(tiny_bert_path: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownTaskError):
        validate_prune_config(_config(tiny_bert_path, {"name": "no-such-task"}))
    with pytest.raises(ModelLoadError, match="no-such-dir"):
        validate_prune_config(_config(tmp_path / "no-such-dir", REVIEWS))
    from transformers import T5Config

    T5Config(d_model=16, num_layers=1, num_heads=2, d_ff=32, d_kv=8, vocab_size=50).save_pretrained(tmp_path / "t5")
    with pytest.raises(UnsupportedModelError, match="t5"):
        validate_prune_config(_config(tmp_path / "t5", REVIEWS))


@pytest.mark.slow
def test_real_minilm_ppruning_masks_differ_from_random_at_the_same_counts(minilm_path: Path, tmp_path: Path) -> None:
    params = {"sampling_tokens": 60, "lambda_val": 5}
    target = {"flops_reduction": 0.3}
    masks_only = {"measure": False, "compensation": False}  # the masks are the point here
    pp = prune(
        PruneConfig(model={"id": str(minilm_path)}, task=REVIEWS, target=target, params=params, **masks_only),
        tmp_path / "p",
    )
    rnd = prune(
        PruneConfig(
            model={"id": str(minilm_path)},
            task=REVIEWS,
            target=target,
            method="random",
            params={**params, "allocation": "ppruning"},
            **masks_only,
        ),
        tmp_path / "r",
    )
    mp, mr = load_masks(pp.output_dir), load_masks(rnd.output_dir)
    assert mp.head_counts() == mr.head_counts() and mp.neuron_counts() == mr.neuron_counts()
    assert not torch.equal(mp.neuron_mask, mr.neuron_mask)
    assert pp.report["achieved"]["flops_reduction_pruned_part"] == pytest.approx(0.3, abs=0.01)
    # real weights cluster unevenly: per-layer counts are not all equal
    assert len(set(mp.neuron_counts())) > 1
