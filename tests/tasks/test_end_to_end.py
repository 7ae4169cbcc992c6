"""Every registered task: prune (P-pruning) -> fine-tune -> evaluate, on its fixture, with a tiny model.

A few optimisation steps each: the point is that every task's data, head, metric and
reload path work together, and that the numbers written are the numbers re-scored.
"""

from __future__ import annotations

import json
import math

import pytest

from ppruning import load_pruned
from ppruning.finetune import finetune
from ppruning.measure.evaluate import evaluate
from ppruning.model.refs import ModelRef
from ppruning.run.config import FinetuneConfig, PruneConfig
from ppruning.run.prune import prune
from ppruning.tasks import all_tasks
from ppruning.tasks.refs import TaskRef
from ppruning.units.budget import Target
from tests.conftest import FIXTURES

CUSTOM = FIXTURES / "custom"


def _files(stem: str) -> dict[str, str]:
    ext = {"reviews": "csv", "pairs": "jsonl", "scores": "csv", "corpus": "txt"}[stem]
    return {s: str(CUSTOM / f"{stem}_{s}.{ext}") for s in ("train", "validation", "test")}


CUSTOM_REFS = {
    "text-classification": TaskRef(
        name="text-classification", data_files=_files("reviews"), text_column="review", label_column="sentiment"
    ),
    "text-pair-classification": TaskRef(
        name="text-pair-classification",
        data_files=_files("pairs"),
        text_column="first",
        text_pair_column="second",
        label_column="same",
    ),
    "text-regression": TaskRef(name="text-regression", data_files=_files("scores")),
    "causal-lm": TaskRef(name="causal-lm", data_files=_files("corpus")),
}
ALL = sorted(all_tasks())


def test_the_matrix_covers_every_registered_task():
    assert set(ALL) >= set(CUSTOM_REFS) and len(ALL) == 17


@pytest.mark.parametrize("name", ALL)
def test_prune_finetune_evaluate_on_the_fixture(name, task_datasets, tiny_bert_path, tiny_gpt2_path, tmp_path):
    info = all_tasks()[name]
    ref = CUSTOM_REFS.get(name, TaskRef(name=name))
    base = tiny_gpt2_path if info.kind == "causal-lm" else tiny_bert_path
    pruned = prune(
        PruneConfig(
            model=ModelRef(id=str(base)),
            task=ref,
            target=Target(flops_reduction=0.3),
            params={"max_instances": 16, "sampling_tokens": 24, "max_length": 32},
            device="cpu",
            measure=False,  # the speed measurement has its own tests (ci_features/test_speedup*)
        ),
        tmp_path / "prune",
    )
    result = finetune(
        FinetuneConfig(
            model=ModelRef(id=str(pruned.model_dir)),
            task=ref,
            epochs=1,
            batch_size=16,
            learning_rate=1e-3,
            max_length=32,
            device="cpu",
        ),
        tmp_path / "ft",
    )
    # the reported splits are the task's evaluation splits (MNLI: matched and mismatched), never GLUE's hidden test
    assert set(result.metrics) == set(info.eval_splits)
    for split, scores in result.metrics.items():
        assert info.main_metric in scores, split
        assert all(math.isfinite(v) for k, v in scores.items() if k != "perplexity")
    assert result.report["best_epoch"] == 1.0 and result.report["pruned"]
    assert result.report["selection_split"] == ("validation" if info.kind == "causal-lm" else "held_out_train")
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text()) == result.metrics
    assert (tmp_path / "ft" / "trainer_log.jsonl").read_text().count("\n") >= 2
    # the saved model is the pruned shape, and re-scoring it gives the same numbers
    reloaded = load_pruned(result.model_dir)
    assert sum(p.numel() for p in reloaded.parameters()) == result.report["parameters"]
    again = evaluate(result.model_dir, ref, device="cpu", max_length=32, batch_size=16)
    for split, scores in result.metrics.items():
        assert again[split][info.main_metric] == pytest.approx(scores[info.main_metric], rel=1e-4, abs=1e-4)
