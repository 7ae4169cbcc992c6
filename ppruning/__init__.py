"""P-pruning: structured pruning of transformer models before fine-tuning.

The library knows nothing of the service: it turns a model, task data and a budget into
masks, a physically smaller checkpoint and a report. ``__all__`` is the public surface,
declared here once: every name code outside the library (the API, the worker, the
migrations) may import. Each loads on first use (PEP 562), so ``import ppruning`` stays
cheap and imports neither torch nor transformers. No module of the library imports this
package root, so the table below can name any of them without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

from ppruning.version import __version__

#: Public name -> the module that defines it (``module:attribute`` where the names differ).
_PUBLIC: dict[str, str] = {
    # running
    "prune": "ppruning.run.prune",
    "PruneResult": "ppruning.run.outputs.base",
    # the subpackage ppruning.finetune shadows a public name 'finetune' once imported
    "finetune_model": "ppruning.finetune:finetune",
    "FinetuneResult": "ppruning.finetune",
    "load_pruned": "ppruning.model.checkpoint",
    # resuming a long training run (the service keeps the state in its artifact store)
    "ResumeStore": "ppruning.methods.contract",
    "encode_resume_state": "ppruning.run.resume",
    "decode_resume_state": "ppruning.run.resume",
    "resolve_device": "ppruning.model.loading",
    "load_task_model": "ppruning.model.loading",
    "load_saved_task_model": "ppruning.model.loading",
    "look_up_hub_model": "ppruning.model.hub",
    # configs and resolving them
    "PruneConfig": "ppruning.run.config",
    "FinetuneConfig": "ppruning.run.config",
    "SamplingConfig": "ppruning.methods.contract",
    "ModelRef": "ppruning.model.refs",
    "TaskRef": "ppruning.tasks.refs",
    "Target": "ppruning.units.budget",
    "MeasureConfig": "ppruning.measure.speed",
    "DistillConfig": "ppruning.recovery.distill",
    "CompensationConfig": "ppruning.recovery.compensation",
    "OutlierUnitsConfig": "ppruning.recovery.outlier_units",
    "check_teacher_tokenizer": "ppruning.recovery.distill",
    "sampling_keys_moved": "ppruning.run.config",
    "true_means_defaults": "ppruning.run.config",
    "PrunePlan": "ppruning.run.plan",
    "resolve_prune_plan": "ppruning.run.plan",
    "validate_prune_config": "ppruning.run.plan",
    "prune_stages": "ppruning.run.plan",
    # errors
    "PruningError": "ppruning.errors",
    "InvalidConfigError": "ppruning.errors",
    "ModelLoadError": "ppruning.errors",
    "JobCancelled": "ppruning.errors",
    "DataError": "ppruning.errors",
    "InfeasibleTargetError": "ppruning.errors",
    "UnsupportedModelError": "ppruning.errors",
    "UnknownTaskError": "ppruning.errors",
    "UnknownMethodError": "ppruning.methods",
    # progress
    "Progress": "ppruning.progress",
    "StderrProgress": "ppruning.progress",
    # methods and tasks
    "MethodSpec": "ppruning.methods",
    "MethodContext": "ppruning.methods",
    "MethodParams": "ppruning.methods",
    "get_method": "ppruning.methods",
    "all_methods": "ppruning.methods",
    "get_task": "ppruning.tasks",
    "all_tasks": "ppruning.tasks",
    "TaskInfo": "ppruning.tasks",
    "validate_task_ref": "ppruning.tasks",
    "check_data_columns": "ppruning.tasks",
    "describe_methods": "ppruning.discovery",
    "describe_tasks": "ppruning.discovery",
    "prune_config_schema": "ppruning.discovery",
    # export (the ``export`` extra)
    "export_onnx": "ppruning.export.onnx",
    "missing_export_modules": "ppruning.export",
    "EXPORT_INSTALL": "ppruning.export",
    # records
    "RECORD_VERSION": "ppruning.run.provenance",
    "spec_from_record": "ppruning.run.provenance",
    "rerun_spec": "ppruning.run.provenance",
    # model cards (README.md of every checkpoint)
    "CARD_FILE": "ppruning.run.outputs.model_card",
    "pruned_card": "ppruning.run.outputs.model_card",
    "finetuned_card": "ppruning.run.outputs.model_card",
    "exported_card": "ppruning.run.outputs.model_card",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:  # PEP 562: the defining module is imported on first use
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ppruning' has no attribute {name!r}")
    module, _, attribute = module.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
