"""A resumable method's job keeps its training state in the artifact store under the job's resume
prefix: a restarted attempt continues from it, a retry keeps it, and it is gone once the job ends.

In process, real PostgreSQL and a real file artifact store; the state a killed worker would
have left is made by the library itself, stopped after a given step.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from jobs.artifacts import ArtifactStore, job_key, open_store, resume_key
from jobs.kinds import parse_spec
from jobs.settings import Settings
from jobs.store import repository as repo
from jobs.store.claims import claim_job
from jobs.store.models import Job, utcnow
from ppruning import JobCancelled, Progress, prune
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import smp_spec
from worker.attempt import Outcome, run_attempt
from worker.ended import ended_without_attempt
from worker.reaper import reap_once
from worker.resume_store import STATE_OBJECT, ArtifactResume

STEPS, SAVED_AT = 12, 5


def settings_for(tmp_path: Path, pg_url: str, roots: list[Path], **fields: object) -> Settings:
    return Settings(
        data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(), device="cpu",
        allowed_model_roots=roots, **fields,
    )  # fmt: skip


def run(sessions, settings: Settings, job_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    assert claim is not None
    return run_attempt(claim, settings, sessions)


class StopAfter(Progress):
    """Stops the run at the first checkpoint after ``step`` steps, as a killed worker would stop."""

    def __init__(self, step: int) -> None:
        self.stop, self.seen = step, 0

    def update(self, step: int, total: int | None = None, **metrics: object) -> None:
        self.seen = step

    def checkpoint(self) -> None:
        if self.seen >= self.stop:
            raise JobCancelled("the worker died here")


def seed_state(spec: dict, store: ArtifactStore, job_id: uuid.UUID, out: Path) -> None:
    """What a worker killed mid-training leaves in the store: the state it saved after ``SAVED_AT`` steps."""
    config = parse_spec(spec).prune_config()  # type: ignore[union-attr]
    with pytest.raises(JobCancelled):
        prune(config, out, StopAfter(SAVED_AT), resume=ArtifactResume(store, job_id))
    assert ArtifactResume(store, job_id).load()["step"] == SAVED_AT  # type: ignore[index]


def has_state(store: ArtifactStore, job_id: uuid.UUID) -> bool:
    return store.fs.exists(f"{store.root_path}/{resume_key(job_id)}/{STATE_OBJECT}")


def test_a_restarted_smp_job_continues_from_the_saved_step_and_its_state_goes_when_it_succeeds(
    sessions, make_job, pg_url, bert_mlm, tmp_path
):
    settings = settings_for(tmp_path, pg_url, [bert_mlm.parent, FIXTURES])
    store = open_store(settings.artifact_root)
    spec = smp_spec(bert_mlm, FIXTURES, STEPS)
    job_id = make_job(spec, attempts=1)  # attempt 1 died after saving its state and uploading one file
    seed_state(spec, store, job_id, tmp_path / "attempt-1")
    (tmp_path / "partial.json").write_text("{}")
    leftover = store.put_file(tmp_path / "partial.json", job_key(job_id, "attempt-1/report.json"))

    result = run(sessions, settings, job_id)  # attempt 2: deletes attempt 1's uploads first

    assert result.outcome is Outcome.SUCCEEDED, result.failure
    job = load(sessions, job_id)
    assert job.attempts == 2
    assert job.result["report"]["details"]["training"]["resumed_from_step"] == SAVED_AT
    with sessions() as session:
        events = repo.list_events(session, job_id, limit=500)
    assert f"resumed from step {SAVED_AT} of {STEPS}" in [e.message for e in events]
    steps = [e.data["step"] for e in events if e.data and e.data.get("type") == "progress" and e.stage == "train"]
    assert steps and min(steps) > SAVED_AT and max(steps) == STEPS
    assert not has_state(store, job_id)  # the job ended: its state went with it
    with pytest.raises(Exception, match="missing"):
        store.stat(leftover.uri)  # the dead attempt's upload did not survive; the state did until the end
    assert not any(a.uri.startswith(store.uri_for(resume_key(job_id))) for a in job.artifacts)


def test_a_job_that_fails_for_good_keeps_no_resume_state(sessions, make_job, pg_url, bert_mlm, tmp_path):
    settings = settings_for(tmp_path, pg_url, [bert_mlm.parent, FIXTURES])
    store = open_store(settings.artifact_root)
    spec = smp_spec(bert_mlm, FIXTURES, STEPS)
    job_id = make_job(spec, attempts=1)
    seed_state(spec, store, job_id, tmp_path / "attempt-1")
    narrowed = settings.model_copy(update={"allowed_model_roots": [FIXTURES]})  # the model folder is no longer allowed

    result = run(sessions, narrowed, job_id)

    assert result.outcome is Outcome.FAILED and load(sessions, job_id).error_type == "InvalidSpec"
    assert not has_state(store, job_id)


def test_a_job_cancelled_while_it_runs_keeps_no_resume_state(sessions, make_job, pg_url, bert_mlm, tmp_path):
    settings = settings_for(tmp_path, pg_url, [bert_mlm.parent, FIXTURES], heartbeat_interval_s=0.05)
    store = open_store(settings.artifact_root)
    spec = smp_spec(bert_mlm, FIXTURES, STEPS)
    job_id = make_job(spec, attempts=1)
    seed_state(spec, store, job_id, tmp_path / "attempt-1")
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
        repo.cancel_job(session, session.get(Job, job_id))  # running: the flag, seen by the first heartbeat

    assert claim is not None
    result = run_attempt(claim, settings, sessions)

    assert result.outcome is Outcome.CANCELLED
    assert not has_state(store, job_id)


def _stale_running(make_job, spec: dict, cancel: bool) -> uuid.UUID:
    """A running job whose worker stopped beating a minute ago (it died)."""
    return make_job(spec, state="running", attempts=1, heartbeat_at=utcnow() - timedelta(minutes=1),
                    cancel_requested=cancel)  # fmt: skip


def test_a_dead_workers_job_re_queued_by_the_reaper_keeps_its_state_and_one_it_cancels_does_not(
    sessions, make_job, pg_url, bert_mlm, tmp_path
):
    settings = settings_for(tmp_path, pg_url, [bert_mlm.parent, FIXTURES])
    store = open_store(settings.artifact_root)
    spec = smp_spec(bert_mlm, FIXTURES, STEPS)
    retried = _stale_running(make_job, spec, cancel=False)
    cancelled = _stale_running(make_job, spec, cancel=True)
    for job_id in (retried, cancelled):
        seed_state(spec, store, job_id, tmp_path / str(job_id))
    sent: list[uuid.UUID] = []

    result = reap_once(sessions, lambda job_id, _: sent.append(job_id), heartbeat_timeout_s=4.0,
                       queued_timeout_s=600.0, finished=partial(ended_without_attempt, sessions, settings))  # fmt: skip

    assert retried in sent and load(sessions, retried).state == "queued"
    assert has_state(store, retried)  # the next attempt continues from it
    assert cancelled in result.finished and load(sessions, cancelled).state == "cancelled"
    assert not has_state(store, cancelled)


@pytest.fixture
def process_settings(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The worker process's own settings (read from its environment) on this test's database."""
    from jobs.settings import get_settings

    monkeypatch.setenv("PPRUNING_DATABASE_URL", pg_url)
    monkeypatch.setenv("PPRUNING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PPRUNING_HEARTBEAT_TIMEOUT_S", "4")  # a minute without a heartbeat is a dead worker
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_a_job_the_claim_step_fails_as_worker_lost_keeps_no_resume_state(
    process_settings, sessions, make_job, bert_mlm, tmp_path
):
    from worker.tasks import run_job

    store = open_store(process_settings.artifact_root)
    spec = smp_spec(bert_mlm, FIXTURES, STEPS)
    job_id = _stale_running(make_job, spec, cancel=False)
    with sessions.begin() as session:
        session.get(Job, job_id).attempts = 3  # it killed its worker every time
    seed_state(spec, store, job_id, tmp_path / "attempt-3")

    run_job.apply(args=[str(job_id)])  # the task as a worker runs it, in this process

    job = load(sessions, job_id)
    assert job.state == "failed" and job.error_type == "WorkerLost"
    assert not has_state(store, job_id)
