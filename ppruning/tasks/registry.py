"""The registry of tasks: GLUE, SQuAD, language modelling and custom local-file tasks.

A task module calls :func:`register_task` at import; the package ``ppruning.tasks``
lists and imports the task modules, so this registry never imports the package back.
The CLI, the API's validation of ``task.name`` and ``GET /tasks`` read this registry.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from ppruning.errors import UnknownTaskError

TaskKind = Literal["classification", "regression", "question-answering", "causal-lm"]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    kind: TaskKind
    summary: str
    #: ``datasets.load_dataset`` path and config; None for custom local-file tasks.
    dataset: str | None = None
    dataset_config: str | None = None
    #: True for the custom tasks that read ``TaskRef.data_files``.
    custom: bool = False
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    num_labels: int | None = None
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("validation",)
    max_length: int = 128
    metrics: tuple[str, ...] = ()
    #: The metric that selects checkpoints and decides quality gates.
    main_metric: str = "accuracy"
    #: Reference fine-tuning hyperparameters (docs/algorithms.md, P-pruning, step 8).
    paper_hparams: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # --- every field below has a default, so older callers still work.
    #: The model head fine-tuning trains: "sequence-classification", "question-answering" or "causal-lm".
    head: str = "sequence-classification"
    #: ``TaskRef`` fields a job spec must set for this task (custom tasks), checked at submission.
    required_fields: tuple[str, ...] = ()
    #: ``TaskRef`` fields a job spec may set for this task.
    optional_fields: tuple[str, ...] = ()
    #: The split that selects checkpoints; None: a held-out slice of train (the reported split stays unseen).
    selection_split: str | None = None
    #: False when a lower main metric is better (perplexity).
    greater_is_better: bool = True
    #: Human-readable label names in label-id order (classification tasks with fixed labels).
    label_names: tuple[str, ...] = ()


_TASKS: dict[str, TaskInfo] = {}


def register_task(info: TaskInfo) -> TaskInfo:
    if info.name in _TASKS:
        raise RuntimeError(f"task {info.name!r} registered twice")
    _TASKS[info.name] = info
    return info


def get_task(name: str) -> TaskInfo:
    try:
        return _TASKS[name]
    except KeyError:
        choices = ", ".join(sorted(_TASKS)) or "(none registered)"
        raise UnknownTaskError(
            f"unknown task {name!r}{_suggestion(name)}; choose one of: {choices}",
            field="task.name",
        ) from None


def _suggestion(name: str) -> str:
    """``; did you mean 'sst2'?`` for ``sst-2`` (case, dashes and underscores aside), or nothing."""

    def norm(text: str) -> str:
        return text.lower().replace("-", "").replace("_", "")

    by_form = {norm(task): task for task in _TASKS}
    close = by_form.get(norm(name)) or next(iter(difflib.get_close_matches(name.lower(), list(_TASKS), n=1)), None)
    return f"; did you mean {close!r}?" if close else ""


def all_tasks() -> dict[str, TaskInfo]:
    return dict(sorted(_TASKS.items()))
