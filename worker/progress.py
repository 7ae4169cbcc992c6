"""The worker's progress listener: stage, fraction, message and events on the job row.

Two writers, both fenced to the claimed attempt (:mod:`jobs.store.claims`):

- the library's calls (``start_stage``, ``update``, ``event``) write stage, one overall
  fraction and a message, throttled to ``progress_min_interval_s`` (stage changes and
  warnings are written at once);
- a heartbeat thread refreshes ``heartbeat_at`` every ``heartbeat_interval_s`` and reads
  ``cancel_requested``. It runs beside the library, so a model download or a long
  clustering step that makes no progress calls still keeps the job alive.

Every stage start and every throttled update is also a job event whose ``data`` is what
a live client needs (``GET /jobs/{id}/events`` as Server-Sent Events): ``type``
('stage' or 'progress'), ``phase``, ``stage``, ``step``, ``total``, ``fraction`` (of the
whole job), ``stage_fraction``, ``rate`` (steps/s), ``eta_s`` (the whole job, from its
observed rate), ``stage_eta_s`` (from the stage's rate) and, when the stage reports them
(fine-tuning), ``loss`` and ``metric`` (``{"name", "value"}``, the latest selection
score) with any other numbers under ``metrics``. Progress events are spaced by at least
``min_interval_s`` and by 1% of the stage's elapsed time, so a long stage stays a few
hundred rows.

``checkpoint()`` costs no database round trip: it raises :class:`JobCancelled` when the
heartbeat thread saw the cancel flag, and :class:`LeaseLost` when this attempt no longer
holds the job (the reaper handed it to another worker). Both stop the library between
batches; the runner then writes nothing as a result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobs.kinds import progress_phases
from jobs.store.claims import Claim, fenced_update, heartbeat
from jobs.store.models import JobEvent
from ppruning import JobCancelled, Progress

log = logging.getLogger(__name__)

#: Relative cost of each library stage, for one overall fraction. Unknown stages weigh 1.
STAGE_WEIGHTS: dict[str, float] = {
    "load_model": 1.0,
    "load_data": 1.0,
    "collect": 4.0,
    "cluster": 2.0,
    "select": 0.5,
    "compensate": 3.0,
    "materialise": 1.0,
    "finetune": 10.0,
    "train": 10.0,
    "evaluate": 1.0,
    "measure": 0.5,
    "write": 0.5,
    "export": 2.0,
}
#: Events per stage kept beyond this are dropped (warnings always pass).
MAX_EVENTS_PER_STAGE = 50


class LeaseLost(JobCancelled):
    """This attempt no longer owns the job: stop, and write nothing."""


class Plan:
    """Maps (phase, stage, step/total) to one fraction in [0, 1] of the whole job.

    A pipeline job runs two phases (prune, then fine-tune); each phase gets a share of
    the bar proportional to its stages' weights.
    """

    def __init__(self, phases: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.phases = {name: tuple(stages) for name, stages in phases}
        totals = {name: sum(STAGE_WEIGHTS.get(s, 1.0) for s in stages) for name, stages in phases}
        grand = sum(totals.values()) or 1.0
        self._offset: dict[tuple[str, str], float] = {}
        self._weight: dict[tuple[str, str], float] = {}
        start = 0.0
        for name, stages in phases:
            for stage in stages:
                w = STAGE_WEIGHTS.get(stage, 1.0) / grand
                self._offset[(name, stage)] = start
                self._weight[(name, stage)] = w
                start += w

    def fraction(self, phase: str, stage: str, done: float) -> float | None:
        """Overall fraction at ``done`` (0..1) of ``stage``; None for a stage not in the plan."""
        key = (phase, stage)
        if key not in self._offset:
            return None
        return min(1.0, self._offset[key] + self._weight[key] * max(0.0, min(1.0, done)))


def plan_for(kind: str, spec: dict[str, Any]) -> Plan:
    """The progress plan of a job: the phases its kind's declaration gives for its spec (:mod:`jobs.kinds`)."""
    return Plan(progress_phases(kind, spec))


class JobProgress(Progress):
    """Writes one job attempt's progress to the database; see the module docstring."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        claim: Claim,
        plan: Plan,
        *,
        min_interval_s: float = 1.0,
        heartbeat_interval_s: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.claim = claim
        self.plan = plan
        self.min_interval_s = min_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.phase = next(iter(plan.phases))
        self.stage: str | None = None
        self.fraction = 0.0
        self._total: int | None = None
        self._last_write = 0.0
        self._last_event = 0.0
        self._job_started = time.monotonic()
        self._stage_started = self._job_started
        self._events_in_stage = 0
        self._cancelled = threading.Event()
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> JobProgress:
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.claim.job_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.heartbeat_interval_s))

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval_s):
            self.beat_once()

    def beat_once(self) -> None:
        """One heartbeat: refresh it and learn about cancel requests or a lost lease."""
        try:
            with self.sessions.begin() as session:
                flag = heartbeat(session, self.claim)
        except Exception:  # a database hiccup must not kill the job; the next beat retries
            log.warning("heartbeat of job %s failed", self.claim.job_id, exc_info=True)
            return
        if flag is None:
            self._lost.set()
        elif flag:
            self._cancelled.set()

    # ------------------------------------------------------------------ Progress API
    def set_phase(self, phase: str) -> None:
        """The next stages belong to ``phase`` of the plan (pipeline jobs)."""
        self.phase = phase

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        self.stage, self._total, self._events_in_stage = stage, total, 0
        self._stage_started = time.monotonic()
        fraction = self.plan.fraction(self.phase, stage, 0.0)
        if fraction is not None:
            self.fraction = max(self.fraction, fraction)
        data = {"type": "stage", "phase": self.phase, "stage": stage, "step": 0, "total": total}
        self._write(force=True, message=message or f"{stage} started", event=data | self._timing(0, total))

    def update(self, step: int, total: int | None = None, **metrics: Any) -> None:
        total = total if total is not None else self._total
        if self.stage and total:
            fraction = self.plan.fraction(self.phase, self.stage, step / total)
            if fraction is not None:
                self.fraction = max(self.fraction, fraction)
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        counter = f"{step}/{total}" if total else f"{step}"
        now = time.monotonic()
        spacing = max(self.min_interval_s, 0.01 * (now - self._stage_started))
        data = None
        if now - self._last_event >= spacing or (total and step >= total):
            data = {"type": "progress", "phase": self.phase, "stage": self.stage, "step": step, "total": total}
            data |= self._timing(step, total) | _metric_fields(metrics)
        self._write(force=False, message=f"{self.stage} {counter} {extra}".strip(), event=data)

    def _timing(self, step: int, total: int | None) -> dict[str, Any]:
        """Fractions, rate and ETAs from what this attempt has observed so far (None until known)."""
        now = time.monotonic()
        in_stage = now - self._stage_started
        rate = step / in_stage if step and in_stage > 0 else None
        stage_eta = (total - step) / rate if rate and total else None
        elapsed = now - self._job_started
        job_eta = elapsed * (1.0 - self.fraction) / self.fraction if 0.01 <= self.fraction < 1.0 else None
        return {
            "fraction": round(self.fraction, 6),
            "stage_fraction": round(min(1.0, step / total), 6) if total else None,
            "rate": _round(rate),
            "eta_s": _round(job_eta),
            "stage_eta_s": _round(stage_eta),
            "elapsed_s": round(elapsed, 3),
        }

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        self._events_in_stage += 1
        if level == "info" and self._events_in_stage > MAX_EVENTS_PER_STAGE:
            return
        with self.sessions.begin() as session:
            session.add(self._event_row(message, level, data or None))

    def checkpoint(self) -> None:
        if self._lost.is_set():
            raise LeaseLost(f"job {self.claim.job_id} attempt {self.claim.attempt} was taken over")
        if self._cancelled.is_set():
            raise JobCancelled(f"job {self.claim.job_id} was cancelled")

    # ------------------------------------------------------------------ writes
    def _event_row(self, message: str, level: str, data: dict[str, Any] | None) -> JobEvent:
        return JobEvent(job_id=self.claim.job_id, level=level, stage=self.stage, message=message, data=data)

    def _write(self, *, force: bool, message: str, event: dict[str, Any] | None = None) -> None:
        """The row's stage, fraction and message (throttled unless ``force``), and ``event`` as a job event."""
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_s and event is None:
            return
        self._last_write = now
        with self.sessions.begin() as session:
            ok = fenced_update(session, self.claim, stage=self.stage, progress=self.fraction, message=message)
            if ok and event is not None:
                self._last_event = now
                session.add(self._event_row(message, "info", event))
        if not ok:
            self._lost.set()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _metric_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """``loss`` and the latest ``metric`` (the first other number) of a stage's update, for live clients."""
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    out: dict[str, Any] = {}
    if "loss" in numbers:
        out["loss"] = numbers.pop("loss")
    if numbers:
        name = next(iter(numbers))
        out["metric"] = {"name": name, "value": numbers[name]}
        out["metrics"] = numbers
    return out
