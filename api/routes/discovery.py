"""``/methods`` and ``/tasks``: what a job spec may ask for, read from the library's registries.

The descriptions come from :mod:`ppruning.discovery` (the same code ``ppruning methods``
and ``ppruning tasks`` print); this module only adds what belongs to the service: the
JSON Schema of a whole ``prune``, ``pipeline`` and ``sweep`` job spec per method, built
from the spec models and specialised to the method.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from api.deps import CurrentOwner
from api.errors import NotFound
from api.schemas import VALIDATION_RESPONSE, ErrorOut
from jobs.kinds import method_spec_models
from ppruning import MethodSpec

router = APIRouter(tags=["discovery"], responses=VALIDATION_RESPONSE)
_ERRORS = {401: {"model": ErrorOut, "description": "No key, an unknown key or a revoked key."}}


def _spec_schemas(info: MethodSpec) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each job kind that runs a method, from the spec models themselves
    (so service fields such as ``callback_url``, ``accept`` and sweep ``targets`` are in),
    specialised to this method like its ``config_schema``."""
    from ppruning import prune_config_schema

    return {kind: prune_config_schema(info, model) for kind, model in method_spec_models().items()}


@cache
def _methods() -> list[dict[str, Any]]:
    from ppruning import describe_methods, get_method

    return [{**m, "spec_schemas": _spec_schemas(get_method(m["name"]))} for m in describe_methods()]


@cache
def _tasks() -> list[dict[str, Any]]:
    from ppruning import describe_tasks

    return describe_tasks()


@router.get("/methods", responses=_ERRORS, summary="Pruning methods, their parameters and schemas")
def list_methods(_owner: CurrentOwner) -> dict[str, list[dict[str, Any]]]:
    """Every method: summary, kind, data needs, supported model families, parameters with
    defaults and ranges, and JSON Schemas of its ``params``, its config and its job specs."""
    return {"items": _methods()}


@router.get(
    "/methods/{name}",
    responses={**_ERRORS, 404: {"model": ErrorOut, "description": "No such method."}},
    summary="One pruning method",
)
def get_method(name: str, _owner: CurrentOwner) -> dict[str, Any]:
    for method in _methods():
        if method["name"] == name:
            return method
    raise NotFound(f"no method {name!r}; the methods are: {', '.join(m['name'] for m in _methods())}")


@router.get("/tasks", responses=_ERRORS, summary="Tasks: data, columns, metrics, custom-file fields")
def list_tasks(_owner: CurrentOwner) -> dict[str, list[dict[str, Any]]]:
    """Every task: kind, dataset or custom files, columns, splits, metrics (the main one
    decides checkpoints and gates), and the ``task`` fields a spec must or may set."""
    return {"items": _tasks()}
