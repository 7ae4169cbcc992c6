"""A job's reproducibility record: the job spec to run again plus the record of each library step.

The library writes one record per run (:mod:`ppruning.provenance`: model revision,
data fingerprint, every parameter, versions); a job may run two (a pipeline prunes,
then fine-tunes). The job's record wraps them with the stored job spec, so
``POST /jobs`` with ``{"kind": record["kind"], **record["rerun_spec"]}`` (or ``ppruning
submit --from-record``) runs the job again, a hub model pinned to the commit it used.
It is stored as ``jobs.result["record"]`` and as the ``record.json`` artifact; the
model archives hold each step's own ``record.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobs.spec_fields import SPEC_VERSION
from ppruning import RECORD_VERSION, rerun_spec
from worker.job_runners import Outputs

RECORD_ARTIFACT = "record.json"
RECORD_KIND = "record"
_MODEL_KEYS = ("id", "source", "revision", "resolved_revision", "content")


def job_record(kind: str, spec: dict[str, Any], steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The job's record: its stored spec and the library records of the ``steps`` it ran, in order."""
    first = next(iter(steps.values()), {})
    body = {k: v for k, v in spec.items() if k != "kind"}
    model = first.get("model") or {}
    return {
        "record_version": RECORD_VERSION,
        "spec_version": body.get("spec_version", SPEC_VERSION),
        "kind": kind,
        "spec": body,
        "rerun_spec": rerun_spec(body, model) if "model" in body and body["model"] else body,
        "seed": body.get("seed"),
        "model": model,
        "data": first.get("data"),
        "steps": steps,
        "versions": first.get("versions"),
        "git_revision": first.get("git_revision"),
    }


def attach_record(outputs: Outputs, kind: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Put the job's record into ``outputs.result`` and ``record.json`` among its artifacts."""
    record = job_record(kind, spec, outputs.steps)
    path = work / RECORD_ARTIFACT
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    outputs.result["record"] = record
    outputs.files.append((RECORD_ARTIFACT, RECORD_KIND, path))
    return record


def artifact_meta(record: dict[str, Any] | None, stored: list[tuple[str, str, Any]]) -> dict[str, Any] | None:
    """What every artifact of the job carries: the digest of its ``record.json`` and the record's headline."""
    if not record:
        return None
    digest = next((obj.sha256 for name, _, obj in stored if name == RECORD_ARTIFACT), None)
    model = record.get("model") or {}
    return {
        "record": {
            "artifact": RECORD_ARTIFACT,
            "sha256": digest,
            "kind": record.get("kind"),
            "seed": record.get("seed"),
            "model": {k: model[k] for k in _MODEL_KEYS if k in model},
            "examples": ((record.get("data") or {}).get("examples") or {}).get("sha256"),
            "git_revision": record.get("git_revision"),
        }
    }
