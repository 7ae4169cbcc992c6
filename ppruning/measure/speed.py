"""Measured speedup: latency and throughput of the dense and the pruned model, side by side.

FLOPs say what pruning *should* save; whether a smaller model runs faster depends on the
device, the batch size and the kernels. So every prune run times both models on its own
device at the stated batch sizes and sequence length: ``warmup`` untimed runs, then timed
pairs (one dense run, one pruned run, back to back, so background load hits both alike).
The speedup is the geometric mean of the paired ratios with a 95% interval; pairs repeat
past ``repeats`` until the interval's half-width is within ``target_rel_half_width`` of
the ratio or ``seconds_per_batch`` pass, and the whole measurement keeps to its budget:
``max_seconds``, and by default no more than a fifth of the run (``max_fraction``: the
budget is a share of the time the run took before it). On a busy machine, timing stops as
soon as the interval cannot narrow enough within what is left of the budget; an interval
that stays wide marks the figure ``noisy`` and the report says "not measured" rather than
give a number the machine's load made up. A batch size whose warm-up and one pair would
pass the budget (projected from the previous batch size) is not timed, and listed.

Inputs are random token ids (timing does not depend on their values) with a full
attention mask; the whole model runs, task head included, since that is what a user
deploys. The figures are compared with the ideal speedup, the ratio of the FLOPs of the
two models at the same sequence length (:func:`ppruning.units.cost.model_costs`); a pruned
model that is not faster says so in ``note``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ppruning.progress import NULL_PROGRESS, Progress


def _t975(df: int) -> float:
    """Student's t quantile for a two-sided 95% interval. scipy.stats is imported here, not at
    the top: it costs seconds, and every process that reads a ``MeasureConfig`` (the API, the
    CLI before it validates anything, each worker) would pay it without measuring anything."""
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, df))

#: Below this the pruned model is called "not faster" (timing noise on a loaded machine is a few per cent).
FASTER_THRESHOLD = 1.02
#: The least budget a measurement gets, however short the run before it (one pair of a small model).
MIN_BUDGET_S = 1.0


class MeasureConfig(BaseModel):
    """How the dense and the pruned model are timed after pruning (the report's ``speed``).

    Left out, ``batch_sizes``, ``repeats`` and ``warmup`` depend on the device: cheap on a
    CPU ([1, 8], at least 3 runs, 1 warm-up), steadier on a GPU ([1, 32], at least 10 runs,
    3 warm-ups). The report records the values used.

    Timing repeats (past ``repeats``) until the 95% interval of the speedup is within
    ``target_rel_half_width`` of it, or ``seconds_per_batch`` have passed at that batch
    size, and the whole measurement keeps to its budget (:meth:`budget_s`): a fifth of the
    run at most by default (``max_fraction``), and never past ``max_seconds``.
    """

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    batch_sizes: list[int] | None = Field(
        default=None, min_length=1, max_length=8, description="Batch sizes timed; default [1, 8] CPU, [1, 32] GPU."
    )
    seq_len: int | None = Field(
        default=None, ge=1, le=65536, description="Tokens per sequence; default: the task's max length."
    )
    repeats: int | None = Field(
        default=None, ge=1, le=100, description="Least timed runs per model and batch size; default 3 CPU, 10 GPU."
    )
    warmup: int | None = Field(
        default=None, ge=0, le=20, description="Untimed runs per model and batch size first; default 1 CPU, 3 GPU."
    )
    max_seconds: float = Field(
        default=60.0, gt=0.0, le=3600.0, description="Time bound of the whole measurement (warm-ups included)."
    )
    seconds_per_batch: float = Field(
        default=20.0, gt=0.0, le=3600.0, description="Stop repeating at one batch size past this many seconds."
    )
    target_rel_half_width: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="Repeat until the 95% interval's half-width is at most this fraction of the speedup.",
    )
    max_fraction: float | None = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="The measurement's largest share of the whole run: its budget is max_fraction/(1-max_fraction) "
        f"of the run's time before it (at least {MIN_BUDGET_S:g} s), never past max_seconds; null: max_seconds alone.",
    )

    def budget_s(self, run_seconds: float | None) -> float:
        """Seconds the measurement may take after a run of ``run_seconds`` (None: not known, max_seconds)."""
        if run_seconds is None or self.max_fraction is None:
            return self.max_seconds
        share = run_seconds * self.max_fraction / (1.0 - self.max_fraction)
        return min(self.max_seconds, max(MIN_BUDGET_S, share))

    @field_validator("batch_sizes")
    @classmethod
    def _positive_unique(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(b < 1 or b > 4096 for b in v):
            raise ValueError("batch sizes must be between 1 and 4096")
        return None if v is None else sorted(set(v))

    def resolved(self, device_type: str) -> MeasureConfig:
        """Every default filled in for ``device_type`` ('cpu', 'cuda', 'mps')."""
        gpu = device_type != "cpu"
        return self.model_copy(
            update={
                "batch_sizes": self.batch_sizes or ([1, 32] if gpu else [1, 8]),
                "repeats": self.repeats or (10 if gpu else 3),
                "warmup": self.warmup if self.warmup is not None else (3 if gpu else 1),
            }
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once_ms(model: nn.Module, inputs: dict[str, torch.Tensor], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    model(**inputs)
    _sync(device)
    return (time.perf_counter() - start) * 1000.0


def random_inputs(
    model: nn.Module, batch: int, seq_len: int, device: torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """``input_ids`` drawn away from special ids (ids >= 5 where the vocabulary allows) and a full mask."""
    vocab = int(getattr(model.config, "vocab_size", 1000) or 1000)
    low = 5 if vocab > 10 else 0
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(low, vocab, (batch, seq_len), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


@contextmanager
def batchable(model: nn.Module) -> Iterator[None]:
    """Let a sequence classifier without a pad token (GPT-2) run batches larger than one.

    Such heads pool at the last non-pad token and refuse batches when no pad id is set;
    the inputs contain no padding, so any id outside them (0, below the drawn range) is
    a harmless stand-in for the duration of the timing.
    """
    config = model.config
    missing = getattr(config, "pad_token_id", 0) is None
    if missing:
        config.pad_token_id = 0
    try:
        yield
    finally:
        if missing:
            config.pad_token_id = None


#: Runs one dense and one pruned forward pass on the inputs; returns their times (ms).
PairTimer = Callable[[nn.Module, nn.Module, dict[str, torch.Tensor]], tuple[float, float]]


def device_pair_timer(device: torch.device) -> PairTimer:
    """The real timer: each model once, synchronised on ``device``."""

    def run(dense: nn.Module, pruned: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[float, float]:
        return _time_once_ms(dense, inputs, device), _time_once_ms(pruned, inputs, device)

    return run


@dataclass
class PairedSample:
    """Interleaved timings of one batch size and whether their ratio is known precisely enough."""

    dense_ms: list[float]
    pruned_ms: list[float]
    precise: bool
    seconds: float

    @property
    def interval(self) -> tuple[float, float, float] | None:
        return ratio_interval(self.dense_ms, self.pruned_ms)


def ratio_interval(dense_ms: list[float], pruned_ms: list[float]) -> tuple[float, float, float] | None:
    """(estimate, low, high) of the speedup: 95% t-interval of the mean log ratio of paired runs.

    Each pair ran back to back, so load that slows both cancels in its ratio; the log makes
    the interval symmetric for slower and faster alike. ``None`` below two pairs.
    """
    n = len(dense_ms)
    if n < 2:
        return None
    logs = [math.log(max(d, 1e-9) / max(p, 1e-9)) for d, p in zip(dense_ms, pruned_ms, strict=True)]
    mean = statistics.fmean(logs)
    half = _t975(n - 1) * statistics.stdev(logs) / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def _precise(interval: tuple[float, float, float] | None, target: float) -> bool:
    if interval is None:
        return False
    estimate, low, high = interval
    return (high - low) / 2 <= target * estimate


def sample_pairs(
    run_pair: Callable[[], tuple[float, float]],
    *,
    min_pairs: int,
    warmup: int,
    target_rel_half_width: float,
    seconds: float,
    clock: Callable[[], float] = time.perf_counter,
    checkpoint: Callable[[], None] = lambda: None,
) -> PairedSample:
    """Time pairs until the ratio's interval is narrow enough (after ``min_pairs``) or ``seconds`` would pass.

    Warm-ups count against ``seconds``; a pair is not started when the last one says it
    would end past the bound, so the bound holds to within one pair. One pair always runs.
    A busy machine ends it early: once the pairs so far say that narrowing the interval to
    the target would need more pairs than the time left allows (the half-width shrinks as
    one over the square root of the pairs), it stops there, not precise.
    """
    start = clock()
    for _ in range(warmup):
        run_pair()
        checkpoint()
    dense_ms: list[float] = []
    pruned_ms: list[float] = []
    while True:
        began = clock()
        d, p = run_pair()
        dense_ms.append(d)
        pruned_ms.append(p)
        checkpoint()
        now = clock()
        precise = _precise(ratio_interval(dense_ms, pruned_ms), target_rel_half_width)
        if (precise and len(dense_ms) >= min_pairs) or now - start + (now - began) > seconds:
            return PairedSample(dense_ms, pruned_ms, precise, now - start)
        if not precise and len(dense_ms) >= max(3, min_pairs):
            needed = pairs_needed(dense_ms, pruned_ms, target_rel_half_width)
            if (needed - len(dense_ms)) * (now - began) > seconds - (now - start):
                return PairedSample(dense_ms, pruned_ms, False, now - start)  # cannot narrow in time: stop now


def pairs_needed(dense_ms: list[float], pruned_ms: list[float], target: float, most: int = 100_000) -> int:
    """How many pairs the interval would need to reach ``target``, were the spread of the log ratios to stay as it is.

    The interval is precise when ``sinh(t(m-1) * sd / sqrt(m)) <= target`` (its half-width relative to the
    estimate); the smallest such ``m`` (at most ``most``), counting the t-quantile's fall as pairs are added.
    """
    logs = [math.log(max(d, 1e-9) / max(p, 1e-9)) for d, p in zip(dense_ms, pruned_ms, strict=True)]
    sd = statistics.stdev(logs)
    limit = math.asinh(target)
    m = len(logs)
    while m < most and _t975(m - 1) * sd / math.sqrt(m) > limit:
        m += 1 if m < 200 else m // 10  # past 200 pairs, steps of a tenth: the figure only decides whether to go on
    return m


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(max(v, 1e-9)) for v in values))


def _figures(batch: int, seq_len: int, sample: PairedSample, ideal: float) -> dict[str, Any]:
    d, p = _geomean(sample.dense_ms), _geomean(sample.pruned_ms)
    speedup = d / p  # the geometric mean of the paired ratios
    interval = sample.interval
    return {
        "batch_size": batch,
        "seq_len": seq_len,
        "runs": len(sample.dense_ms),
        "seconds": round(sample.seconds, 3),
        "dense_latency_ms": round(d, 4),
        "pruned_latency_ms": round(p, 4),
        "dense_throughput_seq_s": round(batch * 1000.0 / d, 3),
        "pruned_throughput_seq_s": round(batch * 1000.0 / p, 3),
        "speedup": round(speedup, 4),
        "speedup_ci": [round(interval[1], 4), round(interval[2], 4)] if interval else None,
        "noisy": not sample.precise,
        "fraction_of_ideal": round(speedup / ideal, 4) if ideal > 0 else None,
    }


def _interval_text(row: dict[str, Any]) -> str:
    ci = row["speedup_ci"]
    spread = f"between {ci[0]:.2f}x and {ci[1]:.2f}x" if ci else "unknown (too few runs)"
    return f"batch {row['batch_size']}: {spread} after {row['runs']} runs in {row['seconds']:.0f} s"


def _note(rows: list[dict[str, Any]], ideal: float) -> str:
    noisy = [r for r in rows if r["noisy"]]
    if rows[-1]["noisy"]:
        return (  # a short budget on an idle machine ends the same way as load: say both, claim neither
            "not measured: the 95% interval stayed wide within the time budget, so no speedup is given ("
            + "; ".join(_interval_text(r) for r in noisy)
            + f"; ideal {ideal:.2f}x from FLOPs): the machine was busy, or the budget was too short for this "
            "model. Measure again on an idle machine, or give the timing more time (measure.max_seconds, "
            "measure.max_fraction: null)."
        )
    precise = [r for r in rows if not r["noisy"]]
    also = f" Noisy, so left out: {'; '.join(_interval_text(r) for r in noisy)}." if noisy else ""
    slow = [r for r in precise if r["speedup"] < FASTER_THRESHOLD]
    if slow:
        where = ", ".join(f"batch {r['batch_size']}: {r['speedup']:.2f}x" for r in slow)
        return (
            f"The pruned model is not faster than the dense one here ({where}; ideal {ideal:.2f}x from FLOPs). "
            "Small batches and small models are often bound by per-layer overhead, not arithmetic." + also
        )
    best = max(precise, key=lambda r: r["speedup"])
    return (
        f"The pruned model is faster at every measured batch size "
        f"(up to {best['speedup']:.2f}x at batch {best['batch_size']}; ideal {ideal:.2f}x from FLOPs)." + also
    )


def measure_speedup(
    dense: nn.Module,
    pruned: nn.Module,
    options: MeasureConfig,
    *,
    seq_len: int,
    device: torch.device,
    dense_flops: float,
    pruned_flops: float,
    progress: Progress = NULL_PROGRESS,
    timer: PairTimer | None = None,
    clock: Callable[[], float] = time.perf_counter,
    run_seconds: float | None = None,
) -> dict[str, Any]:
    """Time both models at each batch size; the report's ``speed`` section.

    ``dense_flops``/``pruned_flops``: MACs per sequence of each model at ``seq_len``
    (whole model), whose ratio is the ideal speedup. The headline ``speedup`` is the one
    at the largest batch size timed (throughput), ``None`` when its interval stayed wide
    (``noisy``); every batch size is listed in ``by_batch`` with its ``speedup_ci``.
    ``run_seconds``: how long the run took before the measurement (its budget is a share
    of it, :meth:`MeasureConfig.budget_s`). ``timer`` and ``clock`` replace the real timing (tests).
    """
    options = options.resolved(device.type)
    assert options.batch_sizes and options.repeats and options.warmup is not None
    ideal = dense_flops / pruned_flops if pruned_flops > 0 else float("inf")
    timer = timer or device_pair_timer(device)
    budget = options.budget_s(run_seconds)
    dense.eval()
    pruned.eval()
    rows: list[dict[str, Any]] = []
    skipped: list[int] = []
    total = len(options.batch_sizes)
    began = clock()
    with torch.inference_mode(), batchable(dense), batchable(pruned):
        for i, batch in enumerate(options.batch_sizes):
            left = budget - (clock() - began)
            if rows and _projected_pair_s(rows[-1], batch) * (options.warmup + 1) > left:
                skipped = options.batch_sizes[i:]  # its warm-up and one pair alone would pass the budget
                break
            progress.update(i, total, batch_size=batch)
            inputs = random_inputs(dense, batch, seq_len, device, seed=i)
            sample = sample_pairs(
                lambda inputs=inputs: timer(dense, pruned, inputs),
                min_pairs=options.repeats,
                warmup=options.warmup,
                target_rel_half_width=options.target_rel_half_width,
                seconds=min(options.seconds_per_batch, left / (total - i)),
                clock=clock,
                checkpoint=progress.checkpoint,
            )
            rows.append(_figures(batch, seq_len, sample, ideal))
    progress.update(total, total)
    headline = rows[-1]
    noisy = headline["noisy"]
    note = _note(rows, ideal)
    if skipped:
        note += (
            f" Batch sizes {', '.join(map(str, skipped))} not timed: they would pass the time budget of {budget:.1f} s."
        )
    return {
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "seq_len": seq_len,
        "repeats": options.repeats,
        "warmup": options.warmup,
        "statistic": "geometric mean of paired dense/pruned ratios, runs interleaved; 95% t-interval on log ratios",
        "target_rel_half_width": options.target_rel_half_width,
        "seconds_per_batch": options.seconds_per_batch,
        "max_seconds": options.max_seconds,
        "max_fraction": options.max_fraction,
        "budget_s": round(budget, 3),
        "skipped_batch_sizes": skipped,
        "seconds": round(clock() - began, 3),
        "ideal_speedup": round(ideal, 4),
        "speedup": None if noisy else headline["speedup"],
        "speedup_ci": headline["speedup_ci"],
        "noisy": noisy,
        "speedup_batch_size": headline["batch_size"],
        "fraction_of_ideal": None if noisy else headline["fraction_of_ideal"],
        "faster": None if noisy else all(r["speedup"] >= FASTER_THRESHOLD for r in rows if not r["noisy"]),
        "by_batch": rows,
        "note": note,
    }


def _projected_pair_s(previous: dict[str, Any], batch: int) -> float:
    """Seconds one pair at ``batch`` should take, from the last batch size's latencies (time grows with the batch)."""
    pair_ms = previous["dense_latency_ms"] + previous["pruned_latency_ms"]
    return pair_ms / 1000.0 * batch / previous["batch_size"]
