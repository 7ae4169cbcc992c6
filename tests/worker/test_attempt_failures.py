"""What an attempt leaves behind when it fails outside its stages, or is killed."""

from __future__ import annotations

import pytest

from jobs.artifacts import StorageError
from jobs.settings import Settings
from jobs.store.claims import claim_job

from .conftest import FIXTURES, load
from .harness import prune_spec


def test_an_error_before_the_stages_fails_the_job_with_its_own_type_not_as_a_lost_worker(
    sessions, make_job, pg_url, tmp_path, monkeypatch
):
    from worker import attempt

    def broken_store(root_uri: str):
        raise StorageError(f"artifact root must be a file:// or s3:// URI, not {root_uri!r}")

    monkeypatch.setattr(attempt, "open_store", broken_store)
    job_id = make_job(prune_spec(tmp_path / "model", FIXTURES))
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    settings = Settings(data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri())
    result = attempt.run_attempt(claim, settings, sessions, may_retry=True)
    assert result.outcome is attempt.Outcome.FAILED
    job = load(sessions, job_id)
    assert (job.state, job.error_type) == ("failed", "StorageError")
    assert "file:// or s3://" in job.error_message


@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_a_plain_path_artifact_root_stops_serve_and_worker_with_one_line(command, tmp_path, monkeypatch, capsys):
    from jobs.settings import get_settings
    from ppruning.cli.main import main

    monkeypatch.setattr("uvicorn.run", lambda *a, **k: None)  # must never be reached
    monkeypatch.setattr("celery.Celery.worker_main", lambda *a, **k: None)
    monkeypatch.setenv("PPRUNING_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("PPRUNING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            main(command)
    finally:
        get_settings.cache_clear()
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("ppruning: invalid setting PPRUNING_ARTIFACT_ROOT")
    assert (tmp_path / "artifacts").as_uri() in err
