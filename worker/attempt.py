"""One attempt of one job, from a held claim to a final state, with nothing half-written.

Artifacts of attempt ``n`` are uploaded under ``jobs/<job_id>/attempt-<n>/`` (the
staging prefix of that attempt) and become the job's artifacts only when their rows
are registered, in the same transaction that moves the job to ``succeeded``. So:

- a cancelled, failed or taken-over attempt deletes its own prefix and registers nothing;
- a dead attempt's leftovers are deleted by the attempt that runs after it;
- a zombie attempt (declared dead, still running) cannot commit: every write is fenced
  to its attempt number (:mod:`jobs.store.claims`).

A tracked job (:mod:`worker.tracking`) is logged to MLflow between the upload and the
registration, so its result names the run and the model version.

The job's resume state (``jobs/<job_id>/resume/``, :mod:`worker.resume_store`) is not an
attempt's upload: the next attempt of a resumable method continues from it, so no
attempt's cleanup deletes it. The attempt that ends the job (succeeded, failed for good,
cancelled) does; a retry or a lost lease keeps it.
"""

from __future__ import annotations

import enum
import logging
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobs import artifacts
from jobs.artifacts import ArtifactStore, open_store
from jobs.kinds import parse_spec
from jobs.settings import Settings
from jobs.spec_checks import recheck_local_inputs, recheck_model_id
from jobs.store import repository as repo
from jobs.store.claims import Claim, lock_if_current
from jobs.store.models import Job
from jobs.store.states import JobState
from ppruning import InvalidConfigError, JobCancelled
from worker.errors import Failure, classify, redact, server_paths
from worker.inputs import empty_working_dir
from worker.job_runners import MODEL_ARCHIVE, Outputs, RunContext, StageRunner
from worker.progress import JobProgress, LeaseLost, plan_for
from worker.records import artifact_meta, attach_record
from worker.resume_store import ArtifactResume, drop_resume_state
from worker.runners import runner_for
from worker.tracking import track_job
from worker.uploads import Stored, upload_outputs

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # another attempt owns the job now; this one wrote nothing
    RETRY = "retry"  # a transient error; the job was handed back to the queue
    WAITING = "waiting"  # a sweep that sent its children; the last child to finish finalises it


#: Outcomes after which the job will not run again: its resume state goes.
ENDED = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELLED})


@dataclass
class AttemptResult:
    outcome: Outcome
    failure: Failure | None = None
    error: BaseException | None = None


def attempt_prefix(claim: Claim, attempt: int | None = None) -> str:
    return artifacts.attempt_prefix(claim.job_id, attempt or claim.attempt)


def _register(session: Session, job: Job, outputs: Outputs, stored: Stored) -> None:
    artifacts = {}
    meta = artifact_meta(outputs.result.get("record"), stored)
    for name, kind, obj in stored:
        repo.add_artifact(session, job.id, name, kind, uri=obj.uri, size=obj.size, sha256=obj.sha256, meta=meta)
        artifacts[name] = {"uri": obj.uri, "size": obj.size, "sha256": obj.sha256}
    repo.record_metrics(session, job.id, outputs.metrics)
    repo.add_event(session, job.id, f"succeeded with {len(stored)} artifacts")
    repo.transition(
        session, job, JobState.SUCCEEDED, progress=1.0, stage=None, message="succeeded",
        result={**outputs.result, "artifacts": artifacts},
    )  # fmt: skip


def _finish(sessions: sessionmaker[Session], claim: Claim, state: JobState, failure: Failure | None) -> bool:
    """Move this attempt's job to a terminal state; False when the lease was lost first."""
    with sessions.begin() as session:
        job = lock_if_current(session, claim)
        if job is None:
            return False
        fields: dict[str, Any] = {"stage": job.stage}
        if failure is not None:
            fields |= {"error_type": failure.error_type, "error_message": failure.message, "message": "failed"}
            repo.add_event(session, job.id, f"{failure.error_type}: {failure.message}", level="error")
        else:
            fields["message"] = "cancelled"
            repo.add_event(session, job.id, "cancelled; no artifacts kept")
        repo.transition(session, job, state, **fields)
    return True


def release(sessions: sessionmaker[Session], claim: Claim, failure: Failure) -> bool:
    """Hand a job back to the queue after a transient error (``running -> queued``)."""
    with sessions.begin() as session:
        job = lock_if_current(session, claim)
        if job is None:
            return False
        repo.add_event(session, job.id, f"{failure.message}; will retry", level="warning")
        repo.transition(session, job, JobState.QUEUED, message=f"retrying: {failure.message}", heartbeat_at=None)
    return True


def fetch_model(sessions: sessionmaker[Session], store: ArtifactStore, job_id: Any, dest: Path) -> Path:
    """Download and unpack the model archive of a finished job (a ``from_job`` fine-tune)."""
    with sessions() as session:
        artifact = repo.get_artifact(session, job_id, MODEL_ARCHIVE)
        if artifact is None:
            raise InvalidConfigError(f"job {job_id} has no {MODEL_ARCHIVE}: it did not succeed", field="from_job")
        uri = artifact.uri
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / MODEL_ARCHIVE
    with archive.open("wb") as fh:
        for chunk in store.open_range(uri):
            fh.write(chunk)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest / "unpacked", filter="data")
    archive.unlink()
    folders = [p for p in (dest / "unpacked").iterdir() if p.is_dir()]
    if len(folders) != 1:
        raise InvalidConfigError(f"the model archive of job {job_id} is not one folder", field="from_job")
    return folders[0]


def fetch_artifact(sessions: sessionmaker[Session], store: ArtifactStore, job_id: Any, name: str, dest: Path) -> Path:
    """Download one artifact of a finished job (a reused ``policy.pt``) into ``dest``; its local file."""
    with sessions() as session:
        artifact = repo.get_artifact(session, job_id, name)
        if artifact is None:
            raise InvalidConfigError(f"job {job_id} has no {name}: it did not succeed", field="policy.from_job")
        uri = artifact.uri
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / name
    with path.open("wb") as fh:
        for chunk in store.open_range(uri):
            fh.write(chunk)
    return path


def _delete_quietly(store: ArtifactStore, prefix: str) -> None:
    try:
        store.delete_prefix(prefix)
    except Exception:  # cleanup must not mask the job's own outcome
        log.warning("could not delete %s", prefix, exc_info=True)


def _failed(
    sessions: sessionmaker[Session], claim: Claim, exc: Exception, *, may_retry: bool, settings: Settings
) -> AttemptResult:
    """Record ``exc`` as the job's own error (or hand the job back when it is transient)."""
    failure = classify(exc)
    failure = replace(failure, message=redact(failure.message, server_paths(settings)))
    log.warning("job %s attempt %d: %s", claim.job_id, claim.attempt, failure, exc_info=exc)
    if failure.transient and may_retry:
        try:
            release(sessions, claim, failure)
        except Exception:  # the database itself is down: the reaper re-sends later
            log.warning("could not hand job %s back", claim.job_id, exc_info=True)
        return AttemptResult(Outcome.RETRY, failure, exc)
    done = _finish(sessions, claim, JobState.FAILED, failure)
    return AttemptResult(Outcome.FAILED if done else Outcome.LOST, failure, exc)


def run_attempt(
    claim: Claim, settings: Settings, sessions: sessionmaker[Session], *, may_retry: bool = False
) -> AttemptResult:
    """Run the claimed job to a final state (or hand it back) and report what happened.

    An exception raised before or around the stages (opening the artifact store, making
    the work folder) is recorded like one raised inside them, with its own type and
    message: left to escape, the job would stay ``running`` until the reaper took it for
    a dead worker and, after three tries, failed it as ``WorkerLost``.
    """
    try:
        runner = runner_for(claim.kind)  # a kind without a runner fails the job, naming the kind
        if runner.children is not None:
            return AttemptResult(Outcome(runner.children(claim, settings, sessions)))
        assert runner.stages is not None  # a Runner has exactly one shape
        result = _run_stages(claim, settings, sessions, runner.stages, may_retry=may_retry)
    except Exception as exc:
        result = _failed(sessions, claim, exc, may_retry=may_retry, settings=settings)
    if result.outcome in ENDED:
        drop_resume_state(settings, claim.job_id)
    return result


def _run_stages(
    claim: Claim, settings: Settings, sessions: sessionmaker[Session], stages: StageRunner, *, may_retry: bool
) -> AttemptResult:
    store = open_store(settings.artifact_root)
    for earlier in range(1, claim.attempt):  # leftovers of attempts that died; their resume state stays
        _delete_quietly(store, attempt_prefix(claim, earlier))
    work_root = settings.data_dir.resolve() / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{claim.job_id}-{claim.attempt}-", dir=work_root))
    try:
        progress = JobProgress(
            sessions,
            claim,
            plan_for(claim.kind, claim.spec),
            min_interval_s=settings.progress_min_interval_s,
            heartbeat_interval_s=settings.heartbeat_interval_s,
        )
        with progress, empty_working_dir(work):
            try:
                recheck_local_inputs(claim.spec, settings)
                resume = ArtifactResume(store, claim.job_id, scratch=work, before_save=progress.checkpoint)
                ctx = RunContext(
                    fetch_model=partial(fetch_model, sessions, store), device=settings.device, resume=resume,
                    check_model=partial(recheck_model_id, settings=settings),
                    fetch_artifact=partial(fetch_artifact, sessions, store),
                )  # fmt: skip
                outputs = stages(parse_spec(claim.spec), work, progress, ctx)
                attach_record(outputs, claim.kind, claim.spec, work)
                progress.checkpoint()
                stored = upload_outputs(
                    store, attempt_prefix(claim), outputs, progress, retry_for_s=settings.upload_retry_s
                )
                progress.checkpoint()
                tracked = track_job(claim.job_id, claim.kind, claim.spec, outputs, settings, progress)
                if tracked is not None:
                    outputs.result["tracking"] = tracked
                progress.checkpoint()
                with sessions.begin() as session:
                    job = lock_if_current(session, claim)
                    if job is None:
                        raise LeaseLost("lease lost before the results were registered")
                    _register(session, job, outputs, stored)
            except LeaseLost:
                _delete_quietly(store, attempt_prefix(claim))
                return AttemptResult(Outcome.LOST)
            except JobCancelled:
                _delete_quietly(store, attempt_prefix(claim))
                done = _finish(sessions, claim, JobState.CANCELLED, None)
                return AttemptResult(Outcome.CANCELLED if done else Outcome.LOST)
            except Exception as exc:
                _delete_quietly(store, attempt_prefix(claim))
                return _failed(sessions, claim, exc, may_retry=may_retry, settings=settings)
        return AttemptResult(Outcome.SUCCEEDED)
    finally:
        shutil.rmtree(work, ignore_errors=True)
