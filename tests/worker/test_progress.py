"""The worker's progress listener: one fraction over weighted stages, throttled writes,
a heartbeat that carries cancel requests, and a fence against a lost lease."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from jobs.kinds.plans import FINETUNE_STAGES
from jobs.store.claims import claim_job
from jobs.store.models import Job, JobEvent
from ppruning.errors import JobCancelled
from worker.progress import JobProgress, LeaseLost, Plan

from .conftest import load

#: What P-pruning declares for a run with measuring on (``ppruning.prune_stages``).
PRUNE_STAGES = ("load_model", "load_data", "collect", "cluster", "select", "materialise", "measure", "write")


def _claimed(sessions, make_job):
    job_id = make_job()
    with sessions.begin() as session:
        return claim_job(session, job_id, "w1", 60.0)


def test_plan_fractions_grow_through_the_stages_and_a_pipeline_splits_the_bar():
    prune = Plan([("prune", PRUNE_STAGES)])
    points = [prune.fraction("prune", s, d) for s in PRUNE_STAGES for d in (0.0, 0.5, 1.0)]
    assert points == sorted(points) and points[0] == 0.0 and points[-1] == pytest.approx(1.0)
    pipeline = Plan([("prune", PRUNE_STAGES), ("finetune", FINETUNE_STAGES)])
    end_of_prune = pipeline.fraction("prune", PRUNE_STAGES[-1], 1.0)
    assert 0.0 < end_of_prune < pipeline.fraction("finetune", "finetune", 0.5) < 1.0
    assert pipeline.fraction("prune", "not-a-stage", 0.5) is None


def test_progress_writes_stage_fraction_and_message_throttled(sessions, make_job):
    claim = _claimed(sessions, make_job)
    progress = JobProgress(sessions, claim, Plan([("prune", PRUNE_STAGES)]), min_interval_s=3600)
    progress.start_stage("collect", total=10)
    at_start = load(sessions, claim.job_id)
    assert at_start.stage == "collect" and 0.0 < at_start.progress < 0.5
    progress.update(5)  # inside the throttle window: not written
    assert load(sessions, claim.job_id).progress == at_start.progress
    progress.min_interval_s = 0.0
    progress.update(10, loss=0.25)
    job = load(sessions, claim.job_id)
    assert job.progress > at_start.progress and job.message == "collect 10/10 loss=0.25"
    progress.event("sampled 200 tokens")
    with sessions() as session:
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == claim.job_id).order_by(JobEvent.id)))
    assert [e.message for e in events] == ["collect started", "collect 10/10 loss=0.25", "sampled 200 tokens"]
    assert [(e.data or {}).get("type") for e in events] == ["stage", "progress", None]
    assert events[1].data["step"] == 10 and events[1].data["loss"] == 0.25


def test_checkpoint_raises_job_cancelled_once_the_heartbeat_sees_the_cancel_flag(sessions, make_job):
    claim = _claimed(sessions, make_job)
    progress = JobProgress(sessions, claim, Plan([("prune", PRUNE_STAGES)]), heartbeat_interval_s=0.05)
    with progress:
        progress.checkpoint()  # not cancelled yet
        with sessions.begin() as session:
            session.get(Job, claim.job_id).cancel_requested = True
        with pytest.raises(JobCancelled) as raised:
            for _ in range(200):
                progress.checkpoint()
                time.sleep(0.01)
    assert not isinstance(raised.value, LeaseLost)


def test_checkpoint_raises_lease_lost_when_another_attempt_took_the_job(sessions, make_job):
    from datetime import timedelta

    from jobs.store.models import utcnow

    claim = _claimed(sessions, make_job)
    with sessions.begin() as session:
        assert claim_job(session, claim.job_id, "w2", 1.0, now=utcnow() + timedelta(seconds=5)) is not None
    progress = JobProgress(sessions, claim, Plan([("prune", PRUNE_STAGES)]))
    progress.beat_once()
    with pytest.raises(LeaseLost):
        progress.checkpoint()
    assert load(sessions, claim.job_id).worker == "w2"
