"""``/methods`` and ``/tasks``: what a job spec may ask for, read from the library's registries.

The descriptions come from :mod:`ppruning.discovery` (the same code ``ppruning methods``
and ``ppruning tasks`` print); this module only adds what belongs to the service: the
JSON Schema of a whole ``prune`` and ``pipeline`` job spec per method, built from
the method's ``config_schema`` plus the spec models' own ``kind`` and ``finetune``.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from fastapi import APIRouter

from api.deps import CurrentOwner
from api.errors import NotFound
from api.schemas import ErrorOut, PipelineJobSpec

router = APIRouter(tags=["discovery"])
_ERRORS = {401: {"model": ErrorOut, "description": "No key, an unknown key or a revoked key."}}


def _spec_schemas(config_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Job-spec schemas of this method: ``prune`` (the config plus ``kind``) and ``pipeline`` (plus ``finetune``)."""
    prune = copy.deepcopy(config_schema)
    prune["properties"] = {"kind": {"const": "prune"}, **prune["properties"]}
    prune["required"] = ["kind", *prune.get("required", [])]
    pipeline = copy.deepcopy(prune)
    pipeline["properties"]["kind"] = {"const": "pipeline"}
    spec = PipelineJobSpec.model_json_schema()
    pipeline["properties"]["finetune"] = spec["properties"]["finetune"]
    pipeline["$defs"]["FinetuneOptions"] = spec["$defs"]["FinetuneOptions"]
    return {"prune": prune, "pipeline": pipeline}


@cache
def _methods() -> list[dict[str, Any]]:
    from ppruning.discovery import describe_methods

    return [{**m, "spec_schemas": _spec_schemas(m["config_schema"])} for m in describe_methods()]


@cache
def _tasks() -> list[dict[str, Any]]:
    from ppruning.discovery import describe_tasks

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
