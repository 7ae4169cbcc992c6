"""An SMP job learns from the teacher its spec names: a model folder, or the model a finished fine-tune
job stored, which the worker downloads first. In process, real PostgreSQL and a file artifact store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jobs.artifacts import job_key, open_store
from jobs.settings import Settings
from jobs.store import repository as repo
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import smp_spec
from worker.attempt import Outcome, run_attempt
from worker.job_runners import MODEL, MODEL_ARCHIVE


def _finished_finetune(make_job, sessions, settings: Settings, model: Path) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A succeeded fine-tune job whose stored model archive is ``model``."""
    job_id = make_job({"kind": "finetune"}, kind="finetune", state="succeeded", progress=1.0)
    stored = open_store(settings.artifact_root).put_archive(model, job_key(job_id, f"attempt-1/{MODEL_ARCHIVE}"))
    with sessions.begin() as session:
        repo.add_artifact(session, job_id, MODEL_ARCHIVE, MODEL, uri=stored.uri, size=stored.size,
                          sha256=stored.sha256)  # fmt: skip
    return job_id


@pytest.mark.parametrize("source", ["folder", "from_job"])
def test_an_smp_job_distils_from_the_teacher_its_spec_names(
    sessions, make_job, pg_url, bert_mlm, tiny_model, tmp_path, source
):
    settings = Settings(data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(),
                        device="cpu", allowed_model_roots=[bert_mlm.parent, FIXTURES])  # fmt: skip
    if source == "folder":
        teacher = {"teacher": {"id": str(tiny_model)}, "temperature": 3.0}
    else:
        teacher = {"from_job": str(_finished_finetune(make_job, sessions, settings, tiny_model)), "temperature": 3.0}
    job_id = make_job(smp_spec(bert_mlm, FIXTURES, steps=4, distill=teacher))
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    assert claim is not None

    result = run_attempt(claim, settings, sessions)

    assert result.outcome is Outcome.SUCCEEDED, result.failure
    job = load(sessions, job_id)
    recorded = job.result["prune_teacher"]  # as the spec named it, defaults filled in
    assert {k: recorded[k] for k in teacher} == teacher and recorded["alpha"] == 0.5
    used = job.result["report"]["details"]["teacher"]  # the folder the method read
    assert Path(used["id"]).name == tiny_model.name
    assert job.result["report"]["params"]["distill"]["temperature"] == 3.0
    if source == "from_job":
        assert used["id"] != str(tiny_model)  # the worker's download, not the original folder
