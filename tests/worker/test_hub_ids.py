"""A hub id is resolved as a hub id only: never as a folder of the worker's (or the API's) working directory.

``org/secretmodel`` passes the submission as a hub id; ``from_pretrained`` would first look
for ``./org/secretmodel``. These tests put such a folder in the working directory, outside
every allowed root, and check that nothing of it is read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jobs.errors import InvalidSpec
from jobs.model_ids import HubModel, LocalModel, parse_model_id
from jobs.settings import Settings
from jobs.spec_checks import recheck_model_id
from jobs.specs import TeacherSpec
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import prune_spec, smp_spec
from worker import attempt
from worker.teachers import resolve_teacher


@pytest.fixture
def cwd_with_models(tmp_path: Path, tiny_model: Path, bert_mlm: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``org/secretmodel`` and ``org/secretteacher``, outside the roots."""
    cwd = tmp_path / "cwd"
    shutil.copytree(tiny_model, cwd / "org" / "secretmodel")
    shutil.copytree(bert_mlm, cwd / "org" / "secretteacher")
    monkeypatch.chdir(cwd)
    return cwd


def _settings(tmp_path: Path, pg_url: str, *roots: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(),
                    allowed_model_roots=[*roots, FIXTURES])  # fmt: skip


def test_a_hub_id_naming_a_folder_of_the_workers_working_directory_does_not_load_it(
    sessions, make_job, pg_url, tmp_path, cwd_with_models
):
    job_id = make_job(prune_spec(Path("org/secretmodel"), FIXTURES, measure=False))  # stored as a hub id
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    result = attempt.run_attempt(claim, _settings(tmp_path, pg_url), sessions)
    assert result.outcome is attempt.Outcome.FAILED
    job = load(sessions, job_id)
    assert job.error_type in ("HubUnavailableError", "ModelLoadError"), (job.error_type, job.error_message)
    assert job.artifacts == [] and str(cwd_with_models) not in job.error_message
    assert Path.cwd() == cwd_with_models  # the worker's own working directory is given back


def test_a_teachers_hub_id_naming_a_folder_of_the_working_directory_does_not_load_it(
    sessions, make_job, pg_url, tmp_path, bert_mlm, cwd_with_models
):
    spec = smp_spec(bert_mlm, FIXTURES, distill={"teacher": {"id": "org/secretteacher"}}, measure=False)
    job_id = make_job(spec)
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    result = attempt.run_attempt(claim, _settings(tmp_path, pg_url, bert_mlm.parent), sessions)
    assert result.outcome is attempt.Outcome.FAILED
    job = load(sessions, job_id)
    assert job.error_type in ("HubUnavailableError", "ModelLoadError"), (job.error_type, job.error_message)
    assert job.artifacts == [] and str(cwd_with_models) not in job.error_message


def test_the_api_reads_a_hub_models_config_from_the_hub_only(
    service_backend, cwd_with_models, tiny_model, monkeypatch
):
    """The submission check reads a hub model's config; a folder of the API's working directory
    with an unsupported config must not be what it reads (offline, the hub is let through)."""
    from tests.worker.conftest import api_client

    config = cwd_with_models / "org" / "secretmodel" / "config.json"  # a family the library refuses: a 422 if read
    config.write_text(json.dumps({"model_type": "t5", "d_model": 32, "num_layers": 2, "num_heads": 4, "d_ff": 64}))
    with api_client(service_backend) as client:
        r = client.http.post("/jobs", json=prune_spec(Path("org/secretmodel"), FIXTURES))
    assert r.status_code == 202, r.text


def test_model_ids_are_decided_in_one_place():
    assert parse_model_id("org/name", "model.id") == HubModel("org/name")
    assert parse_model_id("bert-base-uncased", "model.id") == HubModel("bert-base-uncased")
    for local in ("/models/bert", "./bert", "../bert", "~/bert", "file:///m", ".", "a\\b"):
        assert isinstance(parse_model_id(local, "model.id"), LocalModel), local
    for bad in ("org/name/extra", "org/../x", "-x", "org/", "a b"):
        with pytest.raises(InvalidSpec) as err:
            parse_model_id(bad, "distill.teacher.id")
        assert err.value.field == "distill.teacher.id"


def test_a_named_teacher_is_checked_again_right_before_it_is_handed_over(tmp_path, tiny_model):
    settings = Settings(data_dir=tmp_path, allowed_model_roots=[tiny_model.parent])
    check = lambda model_id, field: recheck_model_id(model_id, field, settings=settings)  # noqa: E731
    inside = TeacherSpec(teacher={"id": str(tiny_model)})
    assert resolve_teacher(inside, lambda *a: Path("/"), tmp_path, check).teacher.id == str(tiny_model)
    outside = tmp_path / "elsewhere"
    shutil.copytree(tiny_model, outside)
    with pytest.raises(InvalidSpec) as err:
        resolve_teacher(TeacherSpec(teacher={"id": str(outside)}), lambda *a: Path("/"), tmp_path, check,
                        "finetune.distill")  # fmt: skip
    assert err.value.field == "finetune.distill.teacher.id"
