"""Every error the API returns, in one JSON shape, mapped in one place.

``{"error": {"type": "...", "message": "...", "field": "..."}}`` (``field`` only when one
input is at fault, dotted like ``target.flops_reduction``); a spec that fails validation
also carries ``problems``, every one with its field, an unknown key (a misspelling) first. Library errors
(:class:`ppruning.errors.PruningError`) become 422s at submission; service errors carry
their own status; pydantic's 422s name the field path; a database that is restarting,
unreachable or out of free connections is a 503 with ``Retry-After``; anything unexpected
is a 500 that says nothing about internals.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobs.errors import InvalidSpec
from jobs.kinds.registry import UnknownJobKind, job_kind
from jobs.lifecycle import NotFinished
from jobs.store.repository import IdempotencyConflict, InvalidCursor, NotCancellable
from jobs.store.states import IllegalTransition
from ppruning import PruningError

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error the service raises on purpose, with its HTTP status."""

    status_code = 400
    type = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None, **kind: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers
        if "type" in kind:
            self.type = kind["type"]
        if "status_code" in kind:
            self.status_code = kind["status_code"]


class Unauthorized(ServiceError):
    status_code = 401
    type = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    """A dashboard session's request that changes state without its CSRF token."""

    status_code = 403
    type = "csrf_failed"


class NotFound(ServiceError):
    status_code = 404
    type = "not_found"


class Conflict(ServiceError):
    status_code = 409
    type = "conflict"


class RangeNotSatisfiable(ServiceError):
    status_code = 416
    type = "range_not_satisfiable"


class TooManyJobs(ServiceError):
    status_code = 429
    type = "too_many_jobs"


class ServiceUnavailable(ServiceError):
    status_code = 503
    type = "unavailable"


def error_body(type_: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int, type_: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(type_, message, field), status_code=status, headers=headers)


def _snake(name: str) -> str:
    name = name.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def pruning_error_type(exc: PruningError) -> str:
    """``UnknownTaskError`` -> ``unknown_task``: the same names the worker writes to failed jobs."""
    return _snake(type(exc).__name__)


# --------------------------------------------------------------------------- pydantic 422s

#: Where FastAPI says an input came from: the first element of ``loc``, not part of the field.
_LOC_SOURCES = {"body", "query", "path", "header", "cookie"}


def _field_path(loc: tuple[Any, ...], tags: set[str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOC_SOURCES:
        parts = parts[1:]
    if parts and parts[0] in tags:  # the discriminated union's tag: ('prune', 'target', ...)
        parts = parts[1:]
    # A union's member in the path ('measure', 'MeasureConfig', 'seq_len'): a class name, not a field.
    parts = [p for p in parts if not p.startswith(("function-", "tagged-union[")) and not _MEMBER.fullmatch(p)]
    return ".".join(parts)


#: A model class's name (CamelCase, two humps or more), as pydantic puts a union member into ``loc``.
_MEMBER = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, Annotated, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _model_classes(arg)]


def _known_keys(tag: str | None, parent: list[str]) -> list[str]:
    """The keys a spec of kind ``tag`` accepts at ``parent`` (``[]``: the top level), for suggestions."""
    try:
        models = [job_kind(tag).spec] if tag else []
    except UnknownJobKind:
        return []
    for part in parent:
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        models = [m for f in fields for m in _model_classes(f.annotation)]
    return sorted({name for model in models for name in model.model_fields})


def _problem(error: dict[str, Any], tags: set[str]) -> dict[str, Any]:
    """One pydantic error as ``{"field", "message", "type"}``; an unknown key names the key it resembles."""
    loc = tuple(error.get("loc", ()))
    field = _field_path(loc, tags)
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    type_ = "validation_error"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, PruningError):
        field = ".".join(p for p in (field, cause.field or "") if p) if cause.field else field
        message, type_ = cause.message, pruning_error_type(cause)
    elif error.get("type") == "extra_forbidden" and field:
        parent, _, key = field.rpartition(".")
        tag = next((str(p) for p in loc[1:2] if str(p) in tags), None)
        known = _known_keys(tag, parent.split(".") if parent else [])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        message = f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
        if known and not close:
            message += f"; accepted here: {', '.join(known)}"
    return {"field": field or None, "message": message, "type": type_}


def _ordered_problems(errors: list[dict[str, Any]], tags: set[str]) -> list[dict[str, Any]]:
    """Every problem once, unknown keys first: a misspelled key is the cause of the 'Field required'
    that follows it (``targt`` given, so ``target`` is missing)."""
    problems: list[dict[str, Any]] = []
    for error in errors:
        problem = _problem(error, tags)
        if problem not in problems:
            problems.append(problem)
    unknown = [p for p, e in zip(problems, errors, strict=False) if e.get("type") == "extra_forbidden"]
    return unknown + [p for p in problems if p not in unknown]


def validation_error_response(exc: RequestValidationError, tags: set[str]) -> JSONResponse:
    """The primary problem as the message with its field, and every problem under ``problems``.

    Library errors raised inside validators keep their field and type.
    """
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    if first.get("type") == "json_invalid":
        return error_response(400, "malformed_json", f"request body is not valid JSON: {first.get('msg', '')}")
    if tuple(first.get("loc", ())) == ("body",):
        if first.get("type") == "missing":
            return error_response(422, "validation_error", "a JSON request body is required")
        if isinstance(first.get("input"), bytes):
            return error_response(
                400, "malformed_json", "request body must be a JSON object sent with Content-Type: application/json"
            )
    if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        kinds = ", ".join(sorted(tags))
        return error_response(422, "validation_error", f"kind: must be one of {kinds}", "kind")
    problems = _ordered_problems(list(errors) or [first], tags)
    primary = problems[0]
    field, message, type_ = primary["field"], primary["message"], primary["type"]
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    if field and type_ == "validation_error":
        message = f"{field}: {message}"
    body = error_body(type_, message, field)
    body["error"]["problems"] = [{k: v for k, v in p.items() if k != "type"} for p in problems]
    return JSONResponse(body, status_code=422)


# --------------------------------------------------------------------------- the database away


def database_unavailable(exc: Exception) -> str | None:
    """``database_unavailable`` (restarting, unreachable, connection lost), ``database_busy`` (no
    pooled connection free in time), or None for a database error that is a bug of ours."""
    if isinstance(exc, sa_exc.TimeoutError):
        return "database_busy"
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return "database_unavailable"
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "database_unavailable"
    return None


def _database_response(request: Request, exc: Exception) -> JSONResponse:
    """A retryable 503 with ``Retry-After``: a restarting database is the client's to wait for, not a 500.
    The message says what happened, never where (the driver's message names host and port)."""
    kind = database_unavailable(exc)
    if kind is None:
        log.exception("unhandled database error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal server error; the service log has the details")
    log.warning("%s on %s %s: %s: %s", kind, request.method, request.url.path, type(exc).__name__, exc)
    retry_after = str(request.app.state.settings.unavailable_retry_after_s)
    message = (
        "the job database is busy (no connection free in time)"
        if kind == "database_busy"
        else "the job database is unavailable (restarting or unreachable)"
    )
    return error_response(503, kind, f"{message}; retry after {retry_after} s", None, {"Retry-After": retry_after})


# --------------------------------------------------------------------------- registration


def install_error_handlers(app: FastAPI, union_tags: set[str]) -> None:
    """Map every exception the routes may raise to the one JSON shape."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status_code, exc.type, exc.message, exc.field, exc.headers)

    @app.exception_handler(InvalidSpec)
    async def _invalid_spec(_: Request, exc: InvalidSpec) -> JSONResponse:
        return error_response(422, exc.type, exc.message, exc.field)

    @app.exception_handler(PruningError)
    async def _pruning(_: Request, exc: PruningError) -> JSONResponse:
        return error_response(422, pruning_error_type(exc), exc.message, exc.field)

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error_response(409, exc.type, str(exc), None, {"Location": f"/jobs/{exc.job_id}"})

    @app.exception_handler(NotCancellable)
    async def _not_cancellable(_: Request, exc: NotCancellable) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(NotFinished)
    async def _not_finished(_: Request, exc: NotFinished) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(InvalidCursor)
    async def _cursor(_: Request, exc: InvalidCursor) -> JSONResponse:
        return error_response(422, "validation_error", str(exc), "cursor")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc, union_tags)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):  # FastAPI's json.loads gave up
            return error_response(400, "malformed_json", "request body is not valid JSON: it is nested too deeply")
        type_ = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, type_, message, None, getattr(exc, "headers", None))

    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.DisconnectionError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        return _database_response(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal server error; the service log has the details")
