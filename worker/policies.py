"""A trained policy for the library: an allowed file as it is, a finished job's ``policy.pt`` downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.specs import PolicySpec
from ppruning import InvalidConfigError

#: The artifact a PruneNet job writes its trained policy to.
POLICY_ARTIFACT = "policy.pt"


def resolve_policy(
    spec: PolicySpec | None, fetch_artifact: Callable[[Any, str, Path], Path] | None, work: Path
) -> str | None:
    """The policy file the method reads (``params.policy``); a ``from_job`` policy is fetched into ``work`` first.

    A ``path`` was checked against the allowed roots at submission and again before the
    attempt read its inputs (:func:`jobs.spec_checks.recheck_local_inputs`).
    """
    if spec is None:
        return None
    if spec.from_job is None:
        return spec.path
    if fetch_artifact is None:  # pragma: no cover - every worker context has one
        raise InvalidConfigError("this worker cannot fetch another job's artifacts", field="policy.from_job")
    return str(fetch_artifact(spec.from_job, POLICY_ARTIFACT, work))
