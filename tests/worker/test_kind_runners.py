"""The worker runs a job by its kind's runner, and a kind it does not know fails the job naming the kind."""

from __future__ import annotations

from jobs.settings import Settings
from jobs.store.claims import claim_job
from worker.attempt import Outcome, run_attempt

from .conftest import load


def test_a_stored_job_of_an_undeclared_kind_fails_naming_the_kind(sessions, make_job, pg_url, tmp_path):
    """Before, such a job got a prune's progress plan and died on a KeyError."""
    job_id = make_job({"kind": "mystery"}, kind="mystery")
    settings = Settings(data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "store").as_uri())
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)

    result = run_attempt(claim, settings, sessions)

    assert result.outcome is Outcome.FAILED
    job = load(sessions, job_id)
    assert job.state == "failed" and job.error_type == "UnknownJobKind"
    assert "job kind 'mystery' is not declared" in job.error_message
