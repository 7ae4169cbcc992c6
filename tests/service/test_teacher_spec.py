"""The service's teacher reference: a model or a finished job, handed to the library as a folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.specs import TeacherSpec
from worker.teachers import resolve_teacher


def test_a_teacher_is_a_model_or_a_job_never_both_nor_neither() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'teacher' or 'from_job'"):
        TeacherSpec.model_validate({})
    with pytest.raises(ValidationError, match="exactly one"):
        TeacherSpec.model_validate({"teacher": {"id": "org/model"}, "from_job": str(uuid.uuid4())})
    with pytest.raises(ValidationError):
        TeacherSpec.model_validate({"teacher": {"id": "org/model"}, "temperature": 0})


def test_a_job_teacher_reaches_the_library_as_the_folder_the_worker_fetched(tmp_path: Path) -> None:
    job = uuid.uuid4()
    fetched: list[tuple[object, Path]] = []

    def fetch(job_id: object, dest: Path) -> Path:
        fetched.append((job_id, dest))
        return dest / "model"

    spec = TeacherSpec.model_validate({"from_job": str(job), "alpha": 0.7})
    config = resolve_teacher(spec, fetch, tmp_path)
    assert fetched == [(job, tmp_path / "teacher")]
    assert config is not None and config.teacher.id == str(tmp_path / "teacher" / "model") and config.alpha == 0.7
    named = resolve_teacher(TeacherSpec.model_validate({"teacher": {"id": "org/t", "revision": "v1"}}), fetch, tmp_path)
    assert named is not None and named.teacher.revision == "v1" and len(fetched) == 1
    assert resolve_teacher(None, fetch, tmp_path) is None
