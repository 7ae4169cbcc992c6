"""The worker's progress listener: stage, fraction, message and events on the job row.

Two writers, both fenced to the claimed attempt (:mod:`worker.claims`):

- the library's calls (``start_stage``, ``update``, ``event``) write stage, one overall
  fraction and a message, throttled to ``progress_min_interval_s`` (stage changes and
  warnings are written at once);
- a heartbeat thread refreshes ``heartbeat_at`` every ``heartbeat_interval_s`` and reads
  ``cancel_requested``. It runs beside the library, so a model download or a long
  clustering step that makes no progress calls still keeps the job alive.

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

from api.db.models import JobEvent
from ppruning.errors import JobCancelled
from ppruning.progress import Progress
from worker.claims import Claim, fenced_update, heartbeat

log = logging.getLogger(__name__)

#: Relative cost of each library stage, for one overall fraction. Unknown stages weigh 1.
STAGE_WEIGHTS: dict[str, float] = {
    "load_model": 1.0,
    "load_data": 1.0,
    "collect": 4.0,
    "cluster": 2.0,
    "select": 0.5,
    "materialise": 1.0,
    "finetune": 10.0,
    "evaluate": 1.0,
    "measure": 0.5,
    "write": 0.5,
}
PRUNE_STAGES = ("load_model", "load_data", "collect", "cluster", "select", "materialise", "measure", "write")
FINETUNE_STAGES = ("load_model", "load_data", "finetune", "evaluate", "write")
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
        fraction = self.plan.fraction(self.phase, stage, 0.0)
        if fraction is not None:
            self.fraction = max(self.fraction, fraction)
        self._write(force=True, message=message or f"{stage} started", event=True)

    def update(self, step: int, total: int | None = None, **metrics: Any) -> None:
        total = total if total is not None else self._total
        if self.stage and total:
            fraction = self.plan.fraction(self.phase, self.stage, step / total)
            if fraction is not None:
                self.fraction = max(self.fraction, fraction)
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        counter = f"{step}/{total}" if total else f"{step}"
        self._write(force=False, message=f"{self.stage} {counter} {extra}".strip())

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

    def _write(self, *, force: bool, message: str, event: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_s:
            return
        self._last_write = now
        with self.sessions.begin() as session:
            ok = fenced_update(session, self.claim, stage=self.stage, progress=self.fraction, message=message)
            if ok and event:
                session.add(self._event_row(message, "info", None))
        if not ok:
            self._lost.set()
