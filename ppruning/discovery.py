"""What the registries offer, described once for ``GET /methods``, ``GET /tasks`` and the CLI.

Every figure here is read from a registry or a pydantic model, never restated: a
method's ``params_schema`` is its ``params_model``'s JSON Schema (the model that
validates job specs and fills in defaults), its ``config_schema`` is ``PruneConfig``'s
schema with ``method`` fixed and ``params`` replaced by that schema, and the model
families come from the method's restriction or, when it has none, from the adapter
registry. So a spec the schema rejects is one the service rejects too, except for what
only the model's own config can tell (model type, feasibility of the target).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from ppruning.methods import MethodSpec, all_methods
from ppruning.methods.contract import SamplingConfig
from ppruning.run.config import PruneConfig
from ppruning.tasks.refs import TaskRef
from ppruning.tasks.registry import TaskInfo, all_tasks

#: JSON Schema keywords that bound a parameter, copied into the flat parameter listing.
_RANGE_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern")


def _parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per parameter: name, type(s), default, bounds, choices and description."""
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf", [prop])
        types = [o.get("type") for o in options if o.get("type")]
        choices = [c for o in options for c in o.get("enum", [o["const"]] if "const" in o else [])]
        row: dict[str, Any] = {"name": name, "type": types[0] if len(types) == 1 else types}
        if "default" in prop or name not in required:
            row["default"] = prop.get("default")
        row["required"] = name in required
        for o in options:
            row.update({k: o[k] for k in _RANGE_KEYS if k in o})
        if choices:
            row["choices"] = choices
        if prop.get("description"):
            row["description"] = prop["description"]
        rows.append(row)
    return rows


def _model_types(info: MethodSpec) -> list[str]:
    from ppruning.arch import supported_model_types

    return sorted(info.model_types) if info.model_types else supported_model_types()


def task_ref_schema_rules() -> list[dict[str, Any]]:
    """JSON Schema ``if/then`` rules: per task, the ``TaskRef`` fields it needs and the ones it refuses."""
    optional_fields = [f for f in TaskRef.model_fields if f != "name"]
    rules = []
    for name, info in all_tasks().items():
        allowed = set(info.required_fields) | set(info.optional_fields)
        then: dict[str, Any] = {}
        if info.required_fields:
            then["required"] = list(info.required_fields)
        refused = [f for f in optional_fields if f not in allowed]
        if refused:
            then["properties"] = {f: {"type": "null"} for f in refused}
        if then:
            rules.append({"if": {"properties": {"name": {"const": name}}, "required": ["name"]}, "then": then})
    return rules


def _any_case(suffix: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else "\\" + c for c in suffix)


def _tighten_refs(defs: dict[str, Any]) -> None:
    """What the ``Target`` and ``TaskRef`` validators check, as schema: one target; custom files by split, suffix."""
    from ppruning.tasks.refs import CUSTOM_SPLITS, FILE_FORMATS

    for target_def, kind in (("Target", "number"), ("SweepTargets", "array")):
        if target_def in defs:
            defs[target_def]["oneOf"] = [
                {"required": [name], "properties": {name: {"type": kind}}}
                for name in ("flops_reduction", "params_reduction")
            ]
    files = defs["TaskRef"]["properties"]["data_files"]
    suffixes = "|".join(_any_case(s) for s in sorted(FILE_FORMATS))
    for option in files.get("anyOf", [files]):
        if option.get("type") == "object":
            option["propertyNames"] = {"enum": list(CUSTOM_SPLITS)}
            option["required"] = ["train"]
            option["additionalProperties"] = {"type": "string", "pattern": f"({suffixes})$"}


def prune_config_schema(info: MethodSpec, model: type[BaseModel] | None = None) -> dict[str, Any]:
    """``PruneConfig``'s JSON Schema for this method: ``method`` fixed, ``params`` the method's own,
    ``task.name`` one of the registered tasks with each task's field rules.

    ``model``: another model with the same ``method``/``params``/``task`` fields (the service's
    job specs, which add fields of their own) to specialise the same way.
    """
    schema = copy.deepcopy((model or PruneConfig).model_json_schema())
    params = copy.deepcopy(info.json_schema())
    defs = schema.setdefault("$defs", {})
    for key, value in params.pop("$defs", {}).items():
        if key in defs and defs[key] != value:
            raise RuntimeError(f"method {info.name!r}: schema name {key!r} clashes with PruneConfig's")
        defs[key] = value
    props = schema["properties"]
    props["method"] = {**props["method"], "const": info.name}
    props["method"].pop("type", None)
    # Specs written before the sampling block gave its keys under ``params``; PruneConfig moves them.
    sampling = SamplingConfig.model_json_schema()["properties"]
    legacy = {k: {**v, "description": f"Accepted here too; prefer sampling.{k}."} for k, v in sampling.items()}
    params["properties"] = {**params.get("properties", {}), **legacy}
    props["params"] = {**params, "default": {}}
    task = defs["TaskRef"]
    task["properties"]["name"] = {**task["properties"]["name"], "enum": sorted(all_tasks())}
    task["allOf"] = task_ref_schema_rules()
    _tighten_refs(defs)
    return schema


def describe_method(info: MethodSpec) -> dict[str, Any]:
    """One method's declaration as JSON: what it needs, reports, accepts and writes, and its parameters."""
    schema = info.json_schema()
    return {
        "name": info.name,
        "version": info.version,
        "summary": info.summary,
        "kind": info.kind,
        "data": info.data,
        "needs": info.needs,
        "stages": list(info.stages),
        "targets": sorted(info.targets),
        "artifacts": list(info.artifacts),
        "resumable": info.resumable,
        "sampling_defaults": SamplingConfig().model_dump(mode="json"),
        "model_types": _model_types(info),
        "model_types_restricted": info.supports is not None,
        "defaults": info.params_model().model_dump(mode="json"),
        "parameters": _parameters(schema),
        "params_schema": schema,
        "config_schema": prune_config_schema(info),
    }


def describe_methods() -> list[dict[str, Any]]:
    """Every registered method, sorted by name (``GET /methods``, ``ppruning methods --json``)."""
    return [describe_method(info) for info in all_methods().values()]


def _ref_fields(names: tuple[str, ...]) -> dict[str, str]:
    return {n: TaskRef.model_fields[n].description or "" for n in names}


def describe_task(info: TaskInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "summary": info.summary,
        "head": info.head,
        "custom": info.custom,
        "dataset": info.dataset,
        "dataset_config": info.dataset_config,
        "text_columns": list(info.text_columns),
        "label_column": info.label_column,
        "num_labels": info.num_labels,
        "label_names": list(info.label_names),
        "train_split": info.train_split,
        "eval_splits": list(info.eval_splits),
        "selection_split": info.selection_split,
        "max_length": info.max_length,
        "metrics": list(info.metrics),
        "main_metric": info.main_metric,
        "greater_is_better": info.greater_is_better,
        "required_fields": _ref_fields(info.required_fields),
        "optional_fields": _ref_fields(info.optional_fields),
        "paper_hparams": dict(info.paper_hparams),
    }


def describe_tasks() -> list[dict[str, Any]]:
    """Every registered task, sorted by name (``GET /tasks``, ``ppruning tasks --json``)."""
    return [describe_task(info) for info in all_tasks().values()]
