"""What SMP and its unstructured baseline share: one declaration, the same checks, the same model.

Both learn unstructured masks of the same matrices on labelled rows, with the same
classifier choices (:mod:`ppruning.methods.smp.classifier`), the same targets (a fraction
of the prunable weights), the same outputs (weight masks) and the same resuming; only
their ``run`` and parameters differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ppruning.errors import InvalidConfigError
from ppruning.methods.contract import WEIGHT_MASK_ARTIFACTS, MethodSpec
from ppruning.methods.smp.classifier import check_classifier, load_classifier_model
from ppruning.methods.smp.params import ClassifierParams
from ppruning.methods.smp.scores import supports
from ppruning.model.refs import ModelRef
from ppruning.tasks.registry import TaskInfo


def check_labels_task(task: TaskInfo) -> None:
    if task.kind != "classification":
        raise InvalidConfigError(
            f"task {task.name!r} is {task.kind}; this method learns from class labels (a classification task)",
            field="task.name",
        )


def check_smp(params: ClassifierParams, model: ModelRef, task: TaskInfo, hf_config: Any) -> None:
    check_labels_task(task)
    check_classifier(params.head, params.label_words, model, task, hf_config)


def load_model(params: ClassifierParams, ref: ModelRef, task: TaskInfo, label_names: list[str] | None) -> Any:
    return load_classifier_model(params.head, ref, task, label_names)


def manifest(params: ClassifierParams, words: list[str] | None, label_names: list[str] | None) -> dict[str, Any]:
    return {"head": params.head, "label_words": words, "label_names": label_names}


def mask_learning_spec(
    name: str,
    summary: str,
    params_model: type[ClassifierParams],
    run: Any,
    stages: tuple[str, ...],
    check: Callable[[Any, ModelRef, TaskInfo, Any], None] = check_smp,
    version: str = "1",
) -> MethodSpec:
    """The declaration SMP and its baseline share: unstructured masks of the same matrices, learned on
    labelled rows with the same classifiers, checks, outputs and resuming. ``check``: the submission
    checks, :func:`check_smp` or a method's own that calls it."""
    return MethodSpec(
        name=name,
        summary=summary,
        kind="unstructured",
        needs="labels",
        params_model=params_model,
        run=run,
        stages=stages,
        targets=frozenset({"params"}),
        artifacts=WEIGHT_MASK_ARTIFACTS,
        resumable=True,
        supports=supports,
        load_model=load_model,
        check=check,
        version=version,
    )
