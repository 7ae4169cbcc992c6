"""Measured speedup: latency and throughput of the dense and the pruned model, side by side.

FLOPs say what pruning *should* save; whether a smaller model runs faster depends on the
device, the batch size and the kernels. So every prune run times both models on its own
device at the stated batch sizes and sequence length: ``warmup`` untimed runs, then
``repeats`` timed runs whose median is reported, the dense and the pruned model
interleaved run by run so background load (other jobs, a busy CPU) hits both alike.

Inputs are random token ids (timing does not depend on their values) with a full
attention mask; the whole model runs, task head included, since that is what a user
deploys. The figures are compared with the ideal speedup, the ratio of the FLOPs of the
two models at the same sequence length (:func:`ppruning.cost.model_costs`); a pruned
model that is not faster says so in ``note``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ppruning.config import MeasureConfig
from ppruning.progress import NULL_PROGRESS, Progress

#: Below this the pruned model is called "not faster" (timing noise on a loaded machine is a few per cent).
FASTER_THRESHOLD = 1.02


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


def paired_latency_ms(
    dense: nn.Module,
    pruned: nn.Module,
    inputs: dict[str, torch.Tensor],
    device: torch.device,
    *,
    repeats: int,
    warmup: int,
    max_seconds: float = float("inf"),
    checkpoint: Callable[[], None] = lambda: None,
) -> tuple[list[float], list[float]]:
    """Timed runs of each model (ms), interleaved; at least one each, fewer than ``repeats`` past ``max_seconds``."""
    dense_ms: list[float] = []
    pruned_ms: list[float] = []
    with torch.inference_mode(), batchable(dense), batchable(pruned):
        for _ in range(warmup):
            _time_once_ms(dense, inputs, device)
            _time_once_ms(pruned, inputs, device)
            checkpoint()
        start = time.perf_counter()
        for _ in range(repeats):
            dense_ms.append(_time_once_ms(dense, inputs, device))
            pruned_ms.append(_time_once_ms(pruned, inputs, device))
            checkpoint()
            if time.perf_counter() - start > max_seconds:
                break
    return dense_ms, pruned_ms


def _figures(batch: int, seq_len: int, dense_ms: list[float], pruned_ms: list[float], ideal: float) -> dict[str, Any]:
    d, p = statistics.median(dense_ms), statistics.median(pruned_ms)
    speedup = d / p if p > 0 else float("inf")
    return {
        "batch_size": batch,
        "seq_len": seq_len,
        "runs": len(dense_ms),
        "dense_latency_ms": round(d, 4),
        "pruned_latency_ms": round(p, 4),
        "dense_throughput_seq_s": round(batch * 1000.0 / d, 3) if d > 0 else None,
        "pruned_throughput_seq_s": round(batch * 1000.0 / p, 3) if p > 0 else None,
        "speedup": round(speedup, 4),
        "fraction_of_ideal": round(speedup / ideal, 4) if ideal > 0 else None,
    }


def _note(rows: list[dict[str, Any]], ideal: float) -> str:
    slow = [r for r in rows if r["speedup"] < FASTER_THRESHOLD]
    if slow:
        where = ", ".join(f"batch {r['batch_size']}: {r['speedup']:.2f}x" for r in slow)
        return (
            f"The pruned model is not faster than the dense one here ({where}; ideal {ideal:.2f}x from FLOPs). "
            "Small batches and small models are often bound by per-layer overhead, not arithmetic."
        )
    best = max(rows, key=lambda r: r["speedup"])
    return (
        f"The pruned model is faster at every measured batch size "
        f"(up to {best['speedup']:.2f}x at batch {best['batch_size']}; ideal {ideal:.2f}x from FLOPs)."
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
) -> dict[str, Any]:
    """Time both models at each batch size; the report's ``speed`` section.

    ``dense_flops``/``pruned_flops``: MACs per sequence of each model at ``seq_len``
    (whole model), whose ratio is the ideal speedup. The headline ``speedup`` is the one
    at the largest batch size (throughput); every batch size is listed in ``by_batch``.
    """
    options = options.resolved(device.type)
    assert options.batch_sizes and options.repeats and options.warmup is not None
    ideal = dense_flops / pruned_flops if pruned_flops > 0 else float("inf")
    dense.eval()
    pruned.eval()
    rows = []
    total = len(options.batch_sizes)
    for i, batch in enumerate(options.batch_sizes):
        progress.update(i, total, batch_size=batch)
        inputs = random_inputs(dense, batch, seq_len, device, seed=i)
        dense_ms, pruned_ms = paired_latency_ms(
            dense,
            pruned,
            inputs,
            device,
            repeats=options.repeats,
            warmup=options.warmup,
            max_seconds=options.max_seconds / total,
            checkpoint=progress.checkpoint,
        )
        rows.append(_figures(batch, seq_len, dense_ms, pruned_ms, ideal))
    progress.update(total, total)
    headline = rows[-1]
    return {
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "seq_len": seq_len,
        "repeats": options.repeats,
        "warmup": options.warmup,
        "statistic": "median, dense and pruned runs interleaved",
        "ideal_speedup": round(ideal, 4),
        "speedup": headline["speedup"],
        "speedup_batch_size": headline["batch_size"],
        "fraction_of_ideal": headline["fraction_of_ideal"],
        "faster": all(r["speedup"] >= FASTER_THRESHOLD for r in rows),
        "by_batch": rows,
        "note": _note(rows, ideal),
    }
