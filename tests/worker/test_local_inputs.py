"""The worker checks a job's local files again before it reads them: a folder can change after submission."""

from __future__ import annotations

import shutil

from jobs.settings import Settings
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import prune_spec, smp_spec
from worker import attempt, runners
from worker.job_runners import Outputs


def test_a_model_file_swapped_for_a_link_outside_the_roots_fails_the_job_unread(
    sessions, make_job, pg_url, tiny_model, tmp_path, monkeypatch
):
    root = tmp_path / "root"
    model = root / "model"
    shutil.copytree(tiny_model, model)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for users\n")
    job_id = make_job(prune_spec(model, FIXTURES))  # as stored after the submission checks
    (model / "vocab.txt").unlink()
    (model / "vocab.txt").symlink_to(secret)  # swapped afterwards
    ran: list[str] = []
    monkeypatch.setitem(runners.RUNNERS, "prune", runners.Runner(stages=lambda *args: ran.append("read") or Outputs()))
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=pg_url,
        artifact_root=(tmp_path / "a").as_uri(),
        allowed_model_roots=[root, FIXTURES],
    )
    result = attempt.run_attempt(claim, settings, sessions)
    assert result.outcome is attempt.Outcome.FAILED and ran == []
    job = load(sessions, job_id)
    assert job.error_type == "InvalidSpec" and "vocab.txt" in job.error_message
    assert str(secret.parent) not in job.error_message and job.artifacts == []


def test_a_teacher_folder_swapped_for_a_link_outside_the_roots_fails_the_job_unread(
    sessions, make_job, pg_url, tiny_model, bert_mlm, tmp_path
):
    root = tmp_path / "root"
    teacher = root / "teacher"
    shutil.copytree(tiny_model, teacher)
    job_id = make_job(smp_spec(bert_mlm, FIXTURES, distill={"teacher": {"id": str(teacher)}}))
    shutil.rmtree(teacher)
    teacher.symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # swapped after the submission checks
    (tmp_path / "elsewhere").mkdir()
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "w1", 60.0)
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(),
                        allowed_model_roots=[root, bert_mlm.parent, FIXTURES])  # fmt: skip
    result = attempt.run_attempt(claim, settings, sessions)
    assert result.outcome is attempt.Outcome.FAILED
    job = load(sessions, job_id)
    assert job.error_type == "InvalidSpec" and job.error_message.startswith("distill.teacher.id")
