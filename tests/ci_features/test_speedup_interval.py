"""The measured speedup's stopping rule, driven by a fake timer and clock: precise -> early stop, noisy -> said so."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ppruning.measure.speed import MeasureConfig, measure_speedup, ratio_interval, sample_pairs


class _Clock:
    """Time that moves only when the fake timer says a run took so long."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(vocab_size=100, pad_token_id=0)


def _timer(clock: _Clock, pairs):
    """Yields (dense_ms, pruned_ms) from ``pairs`` and advances ``clock`` by their sum."""
    source = itertools.cycle(pairs)

    def run(*_args) -> tuple[float, float]:
        d, p = next(source)
        clock.now += (d + p) / 1000.0
        return d, p

    return run


STEADY = [(100.0, 50.0), (102.0, 50.5), (98.0, 49.5)]  # ratio about 2, within a per cent
BUSY = [(100.0, 50.0), (100.0, 140.0), (300.0, 60.0), (90.0, 100.0)]  # ratios 2, 0.7, 5, 0.9


def test_a_steady_machine_stops_after_the_least_runs_with_a_narrow_interval() -> None:
    clock = _Clock()
    timer = _timer(clock, STEADY)
    sample = sample_pairs(timer, min_pairs=3, warmup=1, target_rel_half_width=0.05, seconds=20, clock=clock)
    assert sample.precise and len(sample.dense_ms) == 3
    estimate, low, high = sample.interval
    assert low < estimate < high and (high - low) / 2 <= 0.05 * estimate and estimate == pytest.approx(2.0, rel=0.02)


def test_a_busy_machine_ends_early_and_is_marked_noisy() -> None:
    """The pairs so far say a narrow interval would need far more time than is left: stop, rather than stretch."""
    clock = _Clock()
    timer = _timer(clock, BUSY)
    sample = sample_pairs(timer, min_pairs=3, warmup=1, target_rel_half_width=0.05, seconds=20.0, clock=clock)
    assert not sample.precise and len(sample.dense_ms) == 3
    assert sample.seconds < 2.0  # of the 20 s it was allowed
    estimate, low, high = ratio_interval(sample.dense_ms, sample.pruned_ms)
    assert (high - low) / 2 > 0.05 * estimate


def test_a_moderately_noisy_machine_keeps_going_while_the_time_left_allows() -> None:
    wobbly = [(100.0, 50.0), (104.0, 50.0), (100.0, 52.0), (96.0, 50.0), (100.0, 48.0)]  # ratio 2 within 4-8%
    clock = _Clock()
    sample = sample_pairs(_timer(clock, wobbly), min_pairs=3, warmup=0, target_rel_half_width=0.02, seconds=20.0,
                          clock=clock)  # fmt: skip
    assert len(sample.dense_ms) > 3 and sample.seconds <= 20.0 + 0.2


def _speed(pairs, **options) -> dict:
    clock = _Clock()
    return measure_speedup(
        _Model(),
        _Model(),
        MeasureConfig(batch_sizes=[1, 4], repeats=3, warmup=1, **options),
        seq_len=8,
        device=torch.device("cpu"),
        dense_flops=2.0,
        pruned_flops=1.0,
        timer=_timer(clock, pairs),
        clock=clock,
    )


def test_the_report_gives_the_interval_beside_each_ratio() -> None:
    speed = _speed(STEADY)
    assert speed["noisy"] is False and speed["faster"] is True
    assert speed["speedup"] == speed["by_batch"][-1]["speedup"] == pytest.approx(2.0, rel=0.02)
    for row in speed["by_batch"]:
        low, high = row["speedup_ci"]
        assert low < row["speedup"] < high and row["runs"] == 3 and row["noisy"] is False
    assert speed["speedup_ci"] == speed["by_batch"][-1]["speedup_ci"]
    assert not speed["note"].startswith("noisy")


def test_a_noisy_measurement_gives_no_headline_speedup_and_keeps_to_its_time_bounds() -> None:
    speed = _speed(BUSY, seconds_per_batch=3.0, max_seconds=4.0)
    assert speed["noisy"] is True and speed["speedup"] is None and speed["fraction_of_ideal"] is None
    assert speed["faster"] is None
    assert speed["note"].startswith("not measured: the 95% interval stayed wide")
    assert "the machine was busy, or the budget was too short" in speed["note"]
    first, last = speed["by_batch"]
    assert first["seconds"] <= 3.0 + 0.4 and first["noisy"] and first["speedup_ci"] is not None
    assert speed["seconds"] <= 4.0 + 0.4  # the second batch size gets only what is left of max_seconds


def test_the_measurement_takes_at_most_a_fifth_of_the_run() -> None:
    """After a 20 s run the budget is 5 s (a fifth of 25), whatever max_seconds allows."""
    wobbly = [(100.0, 50.0), (110.0, 50.0), (100.0, 55.0), (90.0, 50.0), (100.0, 45.0)]
    clock = _Clock()
    speed = measure_speedup(
        _Model(), _Model(), MeasureConfig(batch_sizes=[1, 4], repeats=3, warmup=1, target_rel_half_width=0.001),
        seq_len=8, device=torch.device("cpu"), dense_flops=2.0, pruned_flops=1.0,
        timer=_timer(clock, wobbly), clock=clock, run_seconds=20.0,
    )  # fmt: skip
    assert speed["budget_s"] == pytest.approx(5.0) and speed["seconds"] <= 5.0 + 0.2
    assert speed["seconds"] / (20.0 + speed["seconds"]) <= 0.2 + 0.01


def test_a_batch_size_whose_one_pair_would_pass_the_budget_is_not_timed() -> None:
    """A large model: batch 1 takes 3 s a pair, so batch 16 (about 48 s a pair, warm-up first) cannot fit 60 s."""
    clock = _Clock()
    speed = measure_speedup(
        _Model(), _Model(), MeasureConfig(batch_sizes=[1, 16], repeats=3, warmup=1, max_fraction=None),
        seq_len=8, device=torch.device("cpu"), dense_flops=2.0, pruned_flops=1.0,
        timer=_timer(clock, [(2000.0, 1000.0), (2040.0, 1010.0), (1980.0, 990.0)]), clock=clock,
    )  # fmt: skip
    assert [r["batch_size"] for r in speed["by_batch"]] == [1] and speed["skipped_batch_sizes"] == [16]
    assert speed["seconds"] <= 60.0 and "not timed" in speed["note"]


def _row(target: float, speedup: float | None, ci: tuple[float, float] | None, noisy: bool) -> dict:
    return {"target": target, "state": "succeeded", "flops_reduction": target, "metric": None,
            "metric_split": None, "metric_value": None, "speedup": speedup, "speedup_low": ci and ci[0],
            "speedup_high": ci and ci[1], "speedup_noisy": noisy, "ideal_speedup": 1 / (1 - target)}  # fmt: skip


def test_the_sweep_plot_draws_the_intervals_and_names_the_noisy_targets_it_leaves_out() -> None:
    from matplotlib.container import ErrorbarContainer

    from worker.sweep_runs import figure

    spec = SimpleNamespace(method="ppruning", task=SimpleNamespace(name="sst2"), finetune=None,
                           targets=SimpleNamespace(key="flops_reduction"), x_axis="speedup")  # fmt: skip
    rows = [_row(0.2, 1.2, (1.15, 1.26), False), _row(0.3, None, (0.8, 2.1), True), _row(0.4, 1.6, (1.5, 1.7), False)]
    ax = figure(rows, spec).axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert list(bars.lines[0].get_xdata()) == [1.2, 1.6]  # the noisy child has no point
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["left out, noisy (machine busy): 0.3", "measured speedup, 95% interval"]
