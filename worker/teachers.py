"""A distillation teacher for the library: a named model as it is, a finished job's model downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.specs import TeacherSpec
from ppruning import DistillConfig


def resolve_teacher(
    spec: TeacherSpec | None, fetch_model: Callable[[Any, Path], Path], work: Path
) -> DistillConfig | None:
    """The library's :class:`DistillConfig`; a ``from_job`` teacher is fetched into ``work/teacher`` first.

    ``fetch_model`` is the runner context's (job id, destination) -> unpacked model folder.
    """
    if spec is None:
        return None
    if spec.from_job is None:
        return spec.distill_config()
    return spec.distill_config(str(fetch_model(spec.from_job, work / "teacher")))
