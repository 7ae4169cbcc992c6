"""The training loop of the mask-learning methods: batches, progress, cancel, resume, the curve.

A method supplies one step (``step_fn(step, batch) -> (loss, metrics)``, which also runs
the backward pass and the optimiser) and the tensors that make up its state; this loop
draws seeded batches from the labelled rows, reports every step (loss, keep fraction,
the rate the listener turns into an ETA), stops between steps when the listener says
so, records a training curve of about 100 points, and saves its state to
``ctx.resume`` every ``resume_every_s`` seconds so a restarted run continues from its
last saved step. The batch order after a resume is the one an uninterrupted run draws
(epochs are seeded shuffles, so the order is a function of the step).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ppruning.methods.smp.schedule import steps_per_epoch, total_steps
from ppruning.progress import Progress
from ppruning.tasks.collate import PadCollator

StepFn = Callable[[int, dict[str, torch.Tensor]], tuple[float, dict[str, float]]]


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The rows of ``step``: epoch ``step * batch // n`` is a seeded permutation."""
    per_epoch = steps_per_epoch(n, batch_size)
    epoch, within = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    return order[within * batch_size : within * batch_size + batch_size]


def train(
    *,
    stage: str,
    examples: Sequence[dict[str, Any]],
    collator: PadCollator,
    batch_size: int,
    steps: int,
    seed: int,
    device: torch.device,
    step_fn: StepFn,
    state: Callable[[], dict[str, Any]],
    restore: Callable[[dict[str, Any]], None],
    progress: Progress,
    resume: Any = None,
    resume_every_s: float = 300.0,
) -> dict[str, Any]:
    """Run ``steps`` steps (fewer when resumed); the curve, the last loss and timings."""
    start, curve = 0, []
    saved = resume.load() if resume is not None else None
    if saved:
        restore(saved["method"])
        start, curve = int(saved["step"]), list(saved["curve"])
        progress.event(f"resumed from step {start} of {steps}")
    progress.start_stage(stage, total=steps, message=f"{len(examples)} labelled rows, batch {batch_size}")
    every = max(1, steps // 100)
    began = last_save = time.monotonic()
    loss = float("nan")
    for step in range(start, steps):
        progress.checkpoint()
        rows = [examples[i] for i in batch_indices(len(examples), batch_size, seed, step)]
        batch = {k: v.to(device) for k, v in collator(rows).items()}
        loss, metrics = step_fn(step, batch)
        if (step + 1) % every == 0 or step + 1 == steps:
            curve.append({"step": step + 1, "loss": round(loss, 6), **{k: round(v, 6) for k, v in metrics.items()}})
        progress.update(step + 1, total=steps, loss=loss, **metrics)
        if resume is not None and time.monotonic() - last_save >= resume_every_s and step + 1 < steps:
            resume.save({"step": step + 1, "curve": curve, "method": state()})
            last_save = time.monotonic()
    return {
        "steps": steps,
        "resumed_from_step": start,
        "final_loss": loss,
        "seconds": round(time.monotonic() - began, 3),
        "curve": curve,
    }


def train_in_context(
    ctx: Any,
    params: Any,
    *,
    stage: str,
    device: torch.device,
    step_fn: StepFn,
    state: Callable[[], dict[str, Any]],
    restore: Callable[[dict[str, Any]], None],
    steps: int | None = None,
) -> dict[str, Any]:
    """:func:`train` on a method's context (its labelled rows, seed, progress, resume store) and the
    training parameters every mask-training method declares (``epochs`` or ``steps``,
    ``train_batch_size``, ``resume_every_s``); ``steps``: the run's length when the caller has it."""
    return train(
        stage=stage,
        examples=ctx.examples,
        collator=PadCollator(ctx.tokenizer),
        batch_size=params.train_batch_size,
        steps=steps if steps is not None else total_steps(params, len(ctx.examples)),
        seed=ctx.seed,
        device=device,
        step_fn=step_fn,
        state=state,
        restore=restore,
        progress=ctx.progress,
        resume=ctx.resume,
        resume_every_s=params.resume_every_s,
    )
