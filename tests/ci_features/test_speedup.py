"""Measured speedup in every prune report: dense vs pruned latency, throughput, ratio to the ideal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ppruning.measure.speed import MeasureConfig, measure_speedup
from ppruning.run.config import PruneConfig
from tests.worker.conftest import FIXTURES
from tests.worker.harness import prune_config
from worker.job_runners import prune_metrics

#: The timing mechanics under test, not the budget: no share of the (short) run caps it.
MEASURE = {"batch_sizes": [4, 1], "repeats": 3, "warmup": 1, "seconds_per_batch": 3.0, "max_fraction": None}


def _config(model: Path, **overrides) -> PruneConfig:
    mine = {"target": {"flops_reduction": 0.25}, "params": {"max_instances": 16, "sampling_tokens": 30}}
    return prune_config(model, FIXTURES, **(mine | {"measure": MEASURE} | overrides))


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_prune_report_has_dense_and_pruned_latency_and_the_ratio_to_ideal(
    family, tiny_bert_path, tiny_gpt2_path, tmp_path
):
    from ppruning.run.prune import prune

    model = tiny_bert_path if family == "bert" else tiny_gpt2_path  # GPT-2 classifier: no pad token, batch 4
    report = prune(_config(model), tmp_path / "out").report
    speed = report["speed"]
    assert speed["measured"] is True and speed["device"] == "cpu"
    assert [row["batch_size"] for row in speed["by_batch"]] == [1, 4]
    for row in speed["by_batch"]:
        assert row["runs"] >= 3 and row["dense_latency_ms"] > 0 and row["pruned_latency_ms"] > 0
        assert row["speedup_ci"][0] <= row["speedup"] <= row["speedup_ci"][1] and row["seconds"] < 3.0 + 1.0
        assert row["speedup"] == pytest.approx(row["dense_latency_ms"] / row["pruned_latency_ms"], rel=1e-3)
        assert row["pruned_throughput_seq_s"] == pytest.approx(
            row["batch_size"] * 1000 / row["pruned_latency_ms"], rel=1e-3
        )
        assert row["fraction_of_ideal"] == pytest.approx(row["speedup"] / speed["ideal_speedup"], rel=1e-3)
    # About 25% of attention+FFN FLOPs removed (budgeted at the task's length, 128, where one head of
    # the tiny model is a large unit): the ideal whole-model speedup is above 1 and below 1/(1-removed)
    removed = report["achieved"]["flops_reduction_pruned_part"]
    assert 0.25 <= removed < 0.30
    assert 1.02 < speed["ideal_speedup"] < 1 / (1 - removed) + 1e-6
    headline = None if speed["noisy"] else speed["by_batch"][-1]["speedup"]  # a busy machine gives no figure
    assert speed["speedup"] == headline and speed["speedup_batch_size"] == 4
    assert speed["seq_len"] == 128  # the custom task's max length (the tiny models allow 128 positions)
    assert ("not faster" in speed["note"]) is (speed["faster"] is False)
    metrics = prune_metrics(report)["prune"]
    assert metrics.get("speedup") == speed["speedup"] and metrics["ideal_speedup"] == speed["ideal_speedup"]


class _FourTimes(nn.Module):
    """A 'pruned' model that does the dense model's work four times: certainly not faster."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, **inputs: torch.Tensor) -> object:
        for _ in range(3):
            self.inner(**inputs)
        return self.inner(**inputs)


@pytest.fixture
def one_thread():
    """Two OpenMP threads on a shared, loaded CPU time erratically (spin-waits); one thread is steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_pruned_model_that_is_not_faster_says_so(tiny_bert_path, one_thread):
    from transformers import AutoModel

    dense = AutoModel.from_pretrained(tiny_bert_path)
    speed = measure_speedup(
        dense,
        _FourTimes(dense),
        MeasureConfig(batch_sizes=[2], repeats=3, warmup=1, target_rel_half_width=0.5, seconds_per_batch=10),
        seq_len=32,
        device=torch.device("cpu"),
        dense_flops=2.0,
        pruned_flops=1.0,
    )
    assert speed["faster"] is False and speed["speedup"] < 0.6
    assert speed["note"].startswith("The pruned model is not faster than the dense one here (batch 2: 0.")
    assert speed["ideal_speedup"] == 2.0 and speed["fraction_of_ideal"] < 0.4


def test_measure_false_skips_timing_and_bad_measure_options_name_the_field(tiny_bert_path, tmp_path):
    from ppruning.run.prune import prune

    report = prune(_config(tiny_bert_path, measure=False), tmp_path / "out").report
    speed = report["speed"]
    assert speed["measured"] is False and speed["note"].startswith("not measured (measure: false)")
    assert speed["ideal_speedup"] > 1.0  # the cost model's figure, known without timing
    assert "speedup" not in prune_metrics(report)["prune"]
    assert _config(tiny_bert_path, measure=True).measure == MeasureConfig()
    assert MeasureConfig().resolved("cpu").batch_sizes == [1, 8] and MeasureConfig().resolved("cuda").repeats == 10
    for bad in ({"batch_sizes": [0]}, {"batch_sizes": []}, {"repeats": 0}, {"seq_len": 0}, {"unknown": 1}):
        with pytest.raises(ValidationError) as err:
            _config(tiny_bert_path, measure=bad)
        assert err.value.errors()[0]["loc"][:2] == ("measure", "MeasureConfig")
