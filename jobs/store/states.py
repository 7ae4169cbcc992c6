"""The job state machine, written once for the API and the worker.

``running -> queued`` exists for an attempt that is handed back for a retry (a
transient error, or a reaper re-sending a job whose worker died). Every write of
``jobs.state`` goes through this module: one job at a time through
:func:`jobs.store.repository.transition`, many rows at once (claims, the reaper)
through :func:`jobs.store.repository.transition_where`, which refuses an edge the machine does not have.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

TERMINAL: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(Exception):
    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"a job cannot go from {current.value!r} to {target.value!r}")
        self.current = current
        self.target = target


def can_transition(current: JobState | str, target: JobState | str) -> bool:
    return JobState(target) in TRANSITIONS[JobState(current)]


def check_transition(current: JobState | str, target: JobState | str) -> None:
    if not can_transition(current, target):
        raise IllegalTransition(JobState(current), JobState(target))

