"""SMP's schedule as the authors' trainer runs it (kongds/SMP, ``smp_trainer.py`` with ``run.sh``).

- The run is ``epochs`` passes over the labelled rows (12 on the large GLUE sets, batch
  64), or ``steps`` when given.
- The keep fraction v falls from 1 to the target on a cubic ramp and is held for the
  last ``hold_steps`` steps (the authors' ``final_warmup`` 6 x ``threshold_warmup_steps``
  5,000 = 30,000). Their trainer refuses a run no longer than the hold; here the hold is
  at most half the run.
- lambda rises cubically from 0 to its final value over the whole run (their regulariser
  schedule has no warmup steps), not in step with v.
- The learning rates (scores, and a new classifier) fall linearly to zero over the run:
  the Hugging Face trainer's default scheduler at ``warmup_ratio`` 0. The rate used by
  step s is ``lr * (total - s) / total``; after the last step it is 0.
- SMP-S's temperature p: 4 at 70% or more remaining, else 1 (their ``run.sh``; it also
  sets 3 for MNLI at 50% without a teacher, which is not a default here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ppruning.methods.smp.scores import Ramp, keep_fraction_at, lambda_at

#: SMP-S's temperature at ``HIGH_KEEP`` or more remaining, as the authors' run.sh sets it.
HIGH_KEEP, HIGH_KEEP_TEMPERATURE = 0.7, 4.0


def steps_per_epoch(rows: int, batch_size: int) -> int:
    """Full batches per pass (the loop's epochs, :func:`ppruning.methods.smp.training.batch_indices`)."""
    return max(1, rows // batch_size) if rows >= batch_size else 1


def total_steps(params: Any, rows: int) -> int:
    """``params.steps`` when given, else ``ceil(params.epochs * steps_per_epoch)``."""
    if params.steps is not None:
        return int(params.steps)
    return max(1, math.ceil(params.epochs * steps_per_epoch(rows, params.train_batch_size) - 1e-9))


def default_temperature(keep: float) -> float:
    """SMP-S's p for a final keep fraction: 4 at 70% or more remaining, else 1."""
    return HIGH_KEEP_TEMPERATURE if keep >= HIGH_KEEP - 1e-9 else 1.0


@dataclass(frozen=True)
class Schedule:
    """The keep fraction, lambda and the learning-rate factor of every step of one run."""

    total: int
    warmup: int
    hold: int
    lr_schedule: str = "linear"

    @classmethod
    def for_run(cls, total: int, warmup_fraction: float, hold_steps: int, lr_schedule: str) -> Schedule:
        hold = min(hold_steps, total // 2)
        warmup = min(int(warmup_fraction * total), max(0, total - hold - 1))
        return cls(total=total, warmup=warmup, hold=hold, lr_schedule=lr_schedule)

    @property
    def keep_ramp(self) -> Ramp:
        """v's ramp: from the warmup's end to the hold's start (at least one step)."""
        return Ramp(self.warmup, max(1, self.total - self.hold - self.warmup))

    @property
    def hold_start(self) -> int:
        """The first step at the final keep fraction."""
        return self.warmup + self.keep_ramp.ramp

    def keep(self, step: int, final: float) -> float:
        return keep_fraction_at(step, final, self.keep_ramp)

    def lam(self, step: int, final: float) -> float:
        """lambda's cubic rise over the whole run."""
        return lambda_at(step, final, Ramp(0, self.total))

    def lr_factor(self, step: int) -> float:
        """The factor on the base learning rates for the update of ``step`` (``step == total``: after the run)."""
        if self.lr_schedule == "constant":
            return 1.0
        return max(0.0, (self.total - step) / self.total)

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.total,
            "warmup_steps": self.warmup,
            "ramp_steps": self.keep_ramp.ramp,
            "hold_steps": self.hold,
            "lambda": "cubic over the whole run",
            "lr_schedule": self.lr_schedule,
        }


def set_learning_rates(optimizer: torch.optim.Optimizer, base: list[float], factor: float) -> None:
    """Every group's rate at ``factor`` times its base (stateless, so a resumed run needs nothing saved)."""
    for group, lr in zip(optimizer.param_groups, base, strict=True):
        group["lr"] = lr * factor
