"""A teacher must read text as the student does: the submission refuses one with another tokenizer,
naming the field, through the library's own check (student and teacher see the same token ids)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.store import repository
from jobs.store.session import session_scope
from jobs.store.states import JobState


def _other_tokenizer(model_root: Path) -> Path:
    """The allowed tiny BERT's config and weights beside a byte-level BPE tokenizer, inside the root."""
    from tests.support.tiny_models import bpe_tokenizer

    folder = model_root / "bert-with-bpe"
    if not folder.exists():
        shutil.copytree(model_root / "bert", folder)
        for f in folder.iterdir():
            if "token" in f.name or f.name == "vocab.txt":
                f.unlink()
        bpe_tokenizer().save_pretrained(folder)
    return folder


def _finetune(model_root: Path, teacher: dict, **fields) -> dict:
    return {"kind": "finetune", "task": {"name": "sst2"}, "distill": teacher,
            **({"model": {"id": str(model_root / "bert")}} | fields)}  # fmt: skip


def test_a_teacher_with_another_tokenizer_is_refused_at_submission(client, auth, model_root) -> None:
    other = {"teacher": {"id": str(_other_tokenizer(model_root))}}
    r = client.post("/jobs", json=_finetune(model_root, other), headers=auth)
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == "distill.teacher", r.text
    assert "another tokenizer" in error["message"]

    same = {"teacher": {"id": str(model_root / "bert")}}
    r = client.post("/jobs", json=_finetune(model_root, same), headers=auth)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("field", ["teacher", "student"])
def test_a_finished_job_is_compared_through_the_model_it_started_from(
    client, auth, model_root, pg_url, owner, field
) -> None:
    """A teacher (or student) named by a finished job: its model is the one its spec started from."""
    bert, other = str(model_root / "bert"), str(_other_tokenizer(model_root))
    with session_scope(pg_url) as session:
        kind = "finetune" if field == "teacher" else "prune"
        job, _ = repository.create_job(session, owner=owner, kind=kind, spec={"kind": kind, "model": {"id": other}})
        for step in (JobState.RUNNING, JobState.SUCCEEDED):
            repository.transition(session, job, step)
        job_id = str(job.id)
    if field == "teacher":
        spec = _finetune(model_root, {"from_job": job_id})
        expected = "distill.from_job"
    else:
        spec = {"kind": "finetune", "task": {"name": "sst2"}, "from_job": job_id, "distill": {"teacher": {"id": bert}}}
        expected = "distill.teacher"
    r = client.post("/jobs", json=spec, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == expected, r.text
