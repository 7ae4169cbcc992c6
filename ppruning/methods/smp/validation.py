"""SMP's ``checkpoint: best_validation``: score the hold's checkpoints on validation rows, keep the best.

The authors evaluate every 1,000 steps and keep the best checkpoint among those saved at
the final sparsity (their trainer saves only when the threshold is within 0.01 of the
target, and loads the best at the end), so the paper's numbers are dev-selected. This
module scores the classifier on up to ``eval_rows`` rows of the task's selection split
(its validation split when the task names none, as the paper does: then the reported
split also chose the checkpoint, and the report says so) and remembers the best state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ppruning.methods.contract import MethodContext
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.labelled import labelled_examples


def selection_split(ctx: MethodContext) -> str:
    """The task's selection split, else its first evaluation split (the paper's dev set)."""
    return ctx.task.selection_split or ctx.task.eval_splits[0]


def validation_rows(ctx: MethodContext, rows: int) -> list[dict[str, Any]]:
    return labelled_examples(
        ctx.task_ref,
        ctx.tokenizer,
        split=selection_split(ctx),
        max_instances=rows,
        seed=ctx.seed,
        max_length=ctx.sampling.max_length,
        model_config=ctx.model.config,
    )


def accuracy(
    logits_of: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    model: torch.nn.Module,
    rows: Sequence[dict[str, Any]],
    collate: PadCollator,
    batch_size: int,
    device: torch.device,
) -> float:
    """Share of ``rows`` whose arg-max logit is the label, in eval mode (the caller's mode restored)."""
    was_training = model.training
    model.eval()
    right = 0
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                batch = {k: v.to(device) for k, v in collate(list(rows[i : i + batch_size])).items()}
                right += int((logits_of(batch).argmax(-1) == batch["labels"]).sum())
    finally:
        model.train(was_training)
    return right / max(1, len(rows))


class BestCheckpoint:
    """The best-scoring state seen so far among the evaluations of the hold."""

    def __init__(self, split: str, rows: int) -> None:
        self.split, self.rows = split, rows
        self.step: int | None = None
        self.score = -1.0
        self.state: dict[str, Any] | None = None
        self.evaluations: list[dict[str, float]] = []

    def offer(self, step: int, score: float, state: Callable[[], dict[str, Any]]) -> None:
        """Record the evaluation; keep ``state()`` when it beats the best (ties keep the earlier)."""
        self.evaluations.append({"step": step, "accuracy": round(score, 6)})
        if score > self.score:
            self.step, self.score, self.state = step, score, state()

    def dump(self) -> dict[str, Any]:
        return {"step": self.step, "score": self.score, "state": self.state, "evaluations": self.evaluations}

    def load(self, saved: dict[str, Any]) -> None:
        self.step, self.score, self.state = saved["step"], saved["score"], saved["state"]
        self.evaluations = list(saved["evaluations"])

    def report(self) -> dict[str, Any]:
        return {
            "selected": "best_validation",
            "split": self.split,
            "rows": self.rows,
            "step": self.step,
            "accuracy": round(self.score, 6),
            "evaluations": self.evaluations,
        }
