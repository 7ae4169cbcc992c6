"""The phases of the job kinds' progress plans, shared by the kinds that run them.

A phase is a step of a job (prune, fine-tune, export) with the stages it reports; the
worker turns a kind's phases into one progress fraction (``worker.progress.Plan``). A
prune phase's stages are the method's own declaration (``ppruning.prune_stages``).
"""

from __future__ import annotations

from typing import Any

from ppruning import PruningError, prune_stages

#: The stages of the library's fine-tuning run.
FINETUNE_STAGES = ("load_model", "load_data", "finetune", "evaluate", "write")
#: The stage of the ONNX export of a job's final model.
EXPORT_STAGES = ("export",)


def prune_phase(spec: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The stages the spec's method declares; none when the spec does not resolve (the run fails on it).

    A spec naming a trained policy (``policy``) runs the method as the worker will, with ``params.policy``.
    """
    if spec.get("policy"):
        spec = {**spec, "params": {**(spec.get("params") or {}), "policy": "reused"}}
    try:
        return ("prune", prune_stages(spec))
    except (PruningError, ValueError):
        return ("prune", ())


def finetune_phase(name: str = "finetune") -> tuple[str, tuple[str, ...]]:
    return (name, FINETUNE_STAGES)


def export_phases(spec: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The export phase when the spec asks for one, else none."""
    return [("export", EXPORT_STAGES)] if spec.get("export") else []
