"""``ppruning run spec.json``: one job spec run on this machine, the way the service runs it.

The spec goes through what ``POST /jobs`` does (strict parsing, the kind's submission
checks), becomes a job of a private embedded service (SQLite and a file artifact store in
a temporary folder), and runs through the worker's own attempt: the same runners, the
same artifacts, the same record. A sweep's children run one after the other and the
sweep is finalised as a worker would. The artifacts are then copied into ``--output``
(a sweep's children's into ``children/<n>/``). Local paths are allowed anywhere: the
disk is the user's own here.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from jobs import sweeps
from jobs.artifacts import open_store
from jobs.errors import InvalidSpec
from jobs.kinds import checked_spec, parse_submitted
from jobs.settings import Settings
from jobs.store import repository
from jobs.store.claims import claim_job
from jobs.store.migrate import prepare_embedded
from jobs.store.models import Artifact, Job
from jobs.store.session import get_sessionmaker
from ppruning import PruningError
from worker.attempt import run_attempt
from worker.sweep_runs import after_child

OWNER = "local"
#: How long a claim of the local run's job lasts without a heartbeat (the attempt's progress renews it).
LEASE_S = 600.0


class SpecRefused(ValueError):
    """The spec fails the service's validation; the message lists every problem with its field."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]][1:]  # the first part is the union's tag (the kind)
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc) or 'spec'}: {message}")
    return "; ".join(parts)


def validated(body: bytes, settings: Settings, session: Session) -> dict[str, Any]:
    """The spec as the service would store it, or SpecRefused naming the field at fault."""
    try:
        spec = parse_submitted(body)
    except ValidationError as exc:
        raise SpecRefused(_problems(exc)) from None
    try:
        return checked_spec(spec, settings, session, OWNER)
    except (PruningError, InvalidSpec) as exc:  # what POST /jobs answers with a 422
        raise SpecRefused(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None


def _attempt(sessions: sessionmaker[Session], settings: Settings, job_id: uuid.UUID) -> None:
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "local-run", LEASE_S)
    if claim is not None:
        run_attempt(claim, settings, sessions)


def _copy_artifacts(settings: Settings, rows: list[Artifact], dest: Path) -> list[Path]:
    store = open_store(settings.artifact_root)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for row in rows:
        path = dest / row.name
        with path.open("wb") as fh:
            for chunk in store.open_range(row.uri):
                fh.write(chunk)
        written.append(path)
    return written


def run_spec(spec_file: Path, output: Path, device: str | None = None) -> dict[str, Any]:
    """Run the job ``spec_file`` describes; its final row as a dict (state, result, error) and the files written."""
    body = spec_file.read_bytes()
    with tempfile.TemporaryDirectory(prefix="ppruning-run-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), database_url="", broker_url="", artifact_root="", allowed_model_roots=[Path("/")],
            **({"device": device} if device else {}),
        )  # fmt: skip
        prepare_embedded(settings)
        sessions = get_sessionmaker(settings.database_url)
        with sessions.begin() as session:
            stored = validated(body, settings, session)
            job, _ = repository.create_job(session, owner=OWNER, kind=stored["kind"], spec=stored)
            job_id = job.id
        _attempt(sessions, settings, job_id)
        with sessions() as session:
            children = [child.id for child in sweeps.children(session, job_id)]
        for child in children:
            _attempt(sessions, settings, child)
            after_child(sessions, settings, child)
        with sessions() as session:
            done = session.get(Job, job_id)
            assert done is not None
            files = _copy_artifacts(settings, list(done.artifacts), output)
            for n, child in enumerate(sweeps.children(session, job_id)):
                files += _copy_artifacts(settings, list(child.artifacts), output / "children" / str(n))
            summary = {
                "id": str(done.id), "kind": done.kind, "state": done.state, "result": done.result,
                "error": {"type": done.error_type, "message": done.error_message} if done.error_type else None,
                "files": [str(p) for p in files],
            }  # fmt: skip
    (output / "job.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
