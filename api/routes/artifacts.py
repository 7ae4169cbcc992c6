"""``/jobs/{id}/artifacts``: what a job produced, streamed from the artifact store.

Downloads carry ``Content-Length``, the sha256 (``X-Content-SHA256`` in hex and the
RFC 9530 ``Repr-Digest``, plus the older RFC 3230 ``Digest``), an ``ETag``, and honour
one byte range (``Range: bytes=a-b``, ``a-``, ``-n``; the unit in any case) with 206; a
range outside the object, or one that is not a byte range (``bytes=0-1 2``), is 416.
Several ranges in one request are answered with the whole object, which RFC 9110 allows;
so is a ``Range`` whose ``If-Range`` does not match the artifact's ``ETag`` (the client's
copy is of another object).
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import CurrentOwner, SessionDep, StoreDep
from api.errors import NotFound, RangeNotSatisfiable, ServiceUnavailable
from api.routes.jobs import job_url, owned_job
from api.schemas import VALIDATION_RESPONSE, ArtifactOut, ErrorOut
from jobs.artifacts import StorageError, StorageUnavailable
from jobs.store import repository
from jobs.store.models import Artifact

log = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs/{job_id}/artifacts", tags=["artifacts"], responses=VALIDATION_RESPONSE)

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
_MEDIA_TYPES = {
    ".tar.gz": "application/gzip",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".md": "text/markdown; charset=utf-8",
    ".safetensors": "application/octet-stream",
}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` for one satisfiable byte range; None for no range (or several: whole object).

    Raises :class:`RangeNotSatisfiable` for a malformed or unsatisfiable ``bytes`` range.
    """
    if not header:
        return None
    header = header.strip()
    if not header.lower().startswith("bytes="):
        return None  # another unit: ignore the header, as RFC 9110 says
    if "," in header:
        return None
    unit, _, spec = header.partition("=")
    match = _RANGE.fullmatch(f"{unit.strip()}={spec.strip()}")  # spaces inside a range are not allowed
    unsatisfiable = RangeNotSatisfiable(
        f"range {header!r} does not fit an object of {size} bytes", headers={"Content-Range": f"bytes */{size}"}
    )
    if match is None or match.groups() == ("", ""):
        raise unsatisfiable
    first, last = match.groups()
    if first == "":  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - n), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or (last != "" and int(last) < start):
        raise unsatisfiable
    return start, end


def _if_range_holds(if_range: str | None, etag: str) -> bool:
    """No ``If-Range``, or one naming our (strong) ETag; a date or another tag means: send it all."""
    return if_range is None or if_range.strip() == etag


def _media_type(name: str) -> str:
    for suffix, media in _MEDIA_TYPES.items():
        if name.endswith(suffix):
            return media
    return "application/octet-stream"


def _digest_headers(artifact: Artifact) -> dict[str, str]:
    b64 = base64.b64encode(bytes.fromhex(artifact.sha256)).decode()
    return {
        "X-Content-SHA256": artifact.sha256,
        "Repr-Digest": f"sha-256=:{b64}:",
        "Digest": f"SHA-256={b64}",
        "ETag": f'"{artifact.sha256}"',
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(artifact.name.rsplit('/', 1)[-1])}",
    }


@router.get("", response_model=list[ArtifactOut], responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}})
def list_artifacts(request: Request, job_id: uuid.UUID, session: SessionDep, owner: CurrentOwner) -> list[ArtifactOut]:
    owned_job(session, owner, job_id)
    base = job_url(request, job_id)
    return [ArtifactOut.of(a, base) for a in repository.list_artifacts(session, job_id)]


@router.head("/{name:path}", include_in_schema=False)
@router.get(
    "/{name:path}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The whole object."},
        206: {"content": {"application/octet-stream": {}}, "description": "One byte range."},
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        416: {"model": ErrorOut, "description": "The range lies outside the object."},
    },
    summary="Download an artifact",
)
def download_artifact(
    request: Request,
    job_id: uuid.UUID,
    name: str,
    session: SessionDep,
    owner: CurrentOwner,
    store: StoreDep,
    range_: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
    if_range: Annotated[
        str | None,
        Header(alias="If-Range", max_length=200, description="Honour Range only if this is the artifact's ETag."),
    ] = None,
) -> Response:
    owned_job(session, owner, job_id)
    artifact = None if "\x00" in name else repository.get_artifact(session, job_id, name)  # PostgreSQL text: no NUL
    if artifact is None:
        raise NotFound(f"job {job_id} has no artifact {name!r}")
    session.close()  # the stream may take minutes; do not hold a pooled connection meanwhile
    headers = _digest_headers(artifact)
    span = parse_range(range_, artifact.size) if _if_range_holds(if_range, headers["ETag"]) else None
    start, end = span if span is not None else (0, artifact.size)
    headers["Content-Length"] = str(end - start)
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{artifact.size}"
    status_code = 206 if span is not None else 200
    media_type = _media_type(artifact.name)
    if request.method == "HEAD":
        return Response(status_code=status_code, headers=headers, media_type=media_type)
    try:
        chunks = store.open_range(artifact.uri, start, end)
    except StorageUnavailable:  # already retried with backoff: the client may try again later
        retry_after = str(request.app.state.settings.unavailable_retry_after_s)
        raise ServiceUnavailable(
            f"the artifact store is unavailable; retry after {retry_after} s",
            type="storage_unavailable",
            headers={"Retry-After": retry_after},
        ) from None
    except StorageError:  # the message would name the store's layout; the log has it
        log.warning("artifact %s of job %s could not be opened", name, job_id, exc_info=True)
        raise NotFound(f"artifact {name!r} of job {job_id} is recorded but missing from the store") from None
    return StreamingResponse(chunks, status_code=status_code, headers=headers, media_type=media_type)
