"""A distillation teacher for the library: a named model as it is, a finished job's model downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.specs import TeacherSpec
from ppruning import DistillConfig


def resolve_teacher(
    spec: TeacherSpec | None,
    fetch_model: Callable[[Any, Path], Path],
    work: Path,
    check_model: Callable[[str, str], None] | None = None,
    field: str = "distill",
) -> DistillConfig | None:
    """The library's :class:`DistillConfig`; a ``from_job`` teacher is fetched into ``work/teacher`` first.

    ``fetch_model`` is the runner context's (job id, destination) -> unpacked model folder;
    ``check_model`` re-checks a named teacher's id right before it is handed over to be loaded
    (a pipeline's teacher is read an attempt's whole prune phase after the attempt's first check).
    """
    if spec is None:
        return None
    if spec.from_job is None:
        if check_model is not None and spec.teacher is not None:
            check_model(spec.teacher.id, f"{field}.teacher.id")
        return spec.distill_config()
    return spec.distill_config(str(fetch_model(spec.from_job, work / "teacher")))
