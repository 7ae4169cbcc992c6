"""The worker's half of every job kind: one runner per kind declared in :mod:`jobs.kinds`, keyed by kind.

A runner takes one of two shapes, and the declaration says which to expect:

- ``stages``: runs the job in a work folder and returns its :class:`Outputs`, which the
  attempt uploads and registers (:mod:`worker.attempt`); prune, finetune, pipeline.
- ``children``: creates and sends the job's child jobs and returns at once (``"waiting"``,
  or ``"lost"``); the worker that finishes the last child ends the job. This is the shape
  of a kind whose declaration ``spawns`` kinds: a sweep.

:func:`runner_for` raises for a kind without a runner instead of guessing, the worker
refuses to start while a declared kind has none (:func:`check_runners`), and a test fails
the suite for such a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from jobs.kinds import declared, job_kind, job_kinds
from jobs.settings import Settings
from jobs.store.claims import Claim
from worker.job_runners import StageRunner, run_finetune, run_pipeline, run_prune
from worker.sweep_runs import start_sweep

#: (claim, settings, sessions) -> an attempt outcome value: "waiting" once the children are sent, or "lost".
ChildRunner = Callable[[Claim, Settings, sessionmaker[Session]], str]


class NoRunner(LookupError):
    """A job of a kind this worker has no runner for: the job fails with this error, naming the kind."""


@dataclass(frozen=True)
class Runner:
    """How the worker runs one kind: exactly one of ``stages`` and ``children``."""

    stages: StageRunner | None = None
    children: ChildRunner | None = None

    def __post_init__(self) -> None:
        if (self.stages is None) == (self.children is None):
            raise ValueError("a runner runs stages or creates children: give exactly one")


RUNNERS: dict[str, Runner] = {
    "prune": Runner(stages=run_prune),
    "finetune": Runner(stages=run_finetune),
    "pipeline": Runner(stages=run_pipeline),
    "sweep": Runner(children=start_sweep),
}


def runner_for(kind: str) -> Runner:
    """The runner of ``kind``; :class:`NoRunner` when there is none (an undeclared kind: UnknownJobKind)."""
    job_kind(kind)
    try:
        return RUNNERS[kind]
    except KeyError:
        raise NoRunner(f"this worker has no runner for job kind {kind!r} (add one to worker/runners.py)") from None


def runner_problems() -> list[str]:
    """What does not match between the declared kinds and the runners; empty when every kind can run."""
    problems = [f"job kind {kind!r} has no runner" for kind in job_kinds() if kind not in RUNNERS]
    problems += [f"runner {kind!r} runs no declared job kind" for kind in RUNNERS if kind not in job_kinds()]
    for declaration in declared():
        runner = RUNNERS.get(declaration.name)
        if runner is not None and bool(declaration.spawns) != (runner.children is not None):
            shape = "creates children" if runner.children is not None else "runs stages"
            problems.append(f"job kind {declaration.name!r} spawns {list(declaration.spawns)} but its runner {shape}")
    return problems


def check_runners() -> None:
    """Raise, naming every problem, unless each declared kind has a runner of the right shape (worker start)."""
    problems = runner_problems()
    if problems:
        raise NoRunner("; ".join(problems))
