"""Timing models against each other on a shared, noisy machine: interleaved rounds, best of each.

Wall times measured one after another drift with whatever else the machine runs (on a
2-core box shared with other jobs, by 2x or more). Here every model is timed once per
round, round after round, on the same batches, and each keeps its fastest round: the
ratios between models then compare like with like. Two figures per model: inference
latency (forward, no grad) and one training step (forward + backward, no optimiser),
both per batch of the fine-tuning batch size.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ppruning.tasks.refs import TaskRef


def _batches(task: TaskRef, tokenizer: Any, batch_size: int, n_batches: int, max_length: int, device: Any) -> list:
    from ppruning.tasks.collate import PadCollator
    from ppruning.tasks.data import tokenized_inputs

    rows = tokenized_inputs(task, tokenizer, max_instances=batch_size * n_batches, seed=0, max_length=max_length)
    rows = rows.to_list()
    collate = PadCollator(tokenizer)
    return [
        {k: v.to(device) for k, v in collate(rows[i : i + batch_size]).items()} for i in range(0, len(rows), batch_size)
    ]


def _time(fn: Any, device: Any) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved_timings(
    model_dirs: list[Path],
    task: TaskRef,
    *,
    batch_size: int,
    n_batches: int,
    max_length: int,
    device_name: str = "auto",
    rounds: int = 5,
) -> list[dict[str, float]]:
    """Per model: best-round ms per batch for inference and for a training step."""
    from ppruning.model.loading import load_saved_task_model, resolve_device
    from ppruning.tasks.refs import validate_task_ref

    info = validate_task_ref(task)
    device = resolve_device(device_name)
    models = [load_saved_task_model(Path(d), info, device) for d in model_dirs]
    batches = _batches(task, models[0][1], batch_size, n_batches, max_length, device)
    labelled = [{**b, "labels": torch.zeros(b["input_ids"].shape[0], dtype=torch.long, device=device)} for b in batches]
    if info.kind == "regression":
        labelled = [{**b, "labels": b["labels"].float()} for b in labelled]

    def infer(model: Any) -> None:
        with torch.no_grad():
            for b in batches:
                model(**b)

    def train_step(model: Any) -> None:
        model.train()
        for b in labelled:
            model(**b).loss.backward()
        model.zero_grad(set_to_none=True)
        model.eval()

    best = [{"latency_ms": float("inf"), "train_step_ms": float("inf")} for _ in models]
    for model, _ in models:  # warm-up: first calls allocate (autograd buffers, kernels)
        infer(model)
        train_step(model)
    for _ in range(rounds):
        for i, (model, _) in enumerate(models):
            best[i]["latency_ms"] = min(best[i]["latency_ms"], _time(lambda m=model: infer(m), device))
            best[i]["train_step_ms"] = min(best[i]["train_step_ms"], _time(lambda m=model: train_step(m), device))
    return [{k: v / len(batches) * 1000 for k, v in b.items()} for b in best]
