"""Trainer callbacks: progress and cancellation, the JSONL trainer log, checkpoint selection.

Selection evaluates the model at the end of every epoch on the selection split (a
held-out slice of train when the reported split must stay unseen), keeps the best
weights in host memory and restores them when training ends, so the saved model is
the best epoch's; with a patience, training stops after that many epochs without
improvement.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ppruning.progress import Progress


class ProgressCallback(TrainerCallback):
    """progress.update(step, loss, latest metric) each step, and progress.checkpoint() so a job can stop."""

    def __init__(self, progress: Progress, metric_name: str) -> None:
        self.progress = progress
        self.metric_name = metric_name
        self.loss: float | None = None
        self.metric: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress.start_stage("finetune", total=state.max_steps)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        metrics: dict[str, float] = {}
        if self.loss is not None:
            metrics["loss"] = self.loss
        if self.metric is not None:
            metrics[self.metric_name] = self.metric
        self.progress.update(state.global_step, state.max_steps, **metrics)
        self.progress.checkpoint()


class JsonlLogCallback(TrainerCallback):
    """Every Trainer log record (loss, learning rate, epoch) and every selection score, one JSON per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs:
            self.write({"step": state.global_step, "epoch": state.epoch, **logs})


class SelectionCallback(TrainerCallback):
    """Scores each epoch with ``score()``, remembers the best weights, restores them at the end."""

    def __init__(
        self,
        score: Callable[[Any], dict[str, float]],
        metric: str,
        greater_is_better: bool,
        patience: int | None,
        on_score: Callable[[dict[str, Any]], None],
    ) -> None:
        self.score = score
        self.metric = metric
        self.greater = greater_is_better
        self.patience = patience
        self.on_score = on_score
        self.best_value: float | None = None
        self.best_epoch: float | None = None
        self.best_state: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self._since_best = 0

    def _better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.greater else value < self.best_value

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        scores = self.score(model)
        value = float(scores[self.metric])
        epoch = round(float(state.epoch or 0.0), 4)
        record = {"epoch": epoch, "step": state.global_step, "selection": scores}
        self.history.append(record)
        self.on_score(record)
        if self._better(value) or self.best_state is None:
            self.best_value, self.best_epoch = value, epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self._since_best = 0
        else:
            self._since_best += 1
            if self.patience is not None and self._since_best >= self.patience:
                control.should_training_stop = True

    def restore_best(self, model: Any) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
