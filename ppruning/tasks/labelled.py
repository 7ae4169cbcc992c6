"""Labelled training rows for methods that learn from labels (SMP), and the task's class names."""

from __future__ import annotations

from typing import Any

from ppruning.errors import DataError
from ppruning.tasks.data import get_split, label_names, load_task_dataset
from ppruning.tasks.features import resolve_max_length
from ppruning.tasks.prepare import prepare_split
from ppruning.tasks.refs import TaskRef, task_columns, validate_task_ref


def task_label_names(task: TaskRef) -> list[str] | None:
    """Class names in id order (classification), else None."""
    info = validate_task_ref(task)
    if info.kind != "classification":
        return None
    if info.label_names:
        return list(info.label_names)
    _, column = task_columns(info, task)
    return label_names(load_task_dataset(task), column) if column else None


def labelled_examples(
    task: TaskRef,
    tokenizer: Any,
    *,
    split: str | None = None,
    max_instances: int,
    seed: int,
    max_length: int | None = None,
    model_config: Any = None,
) -> list[dict[str, Any]]:
    """Up to ``max_instances`` rows of ``split`` (train by default; a seeded shuffle), encoded with ``labels``."""
    info = validate_task_ref(task)
    dsd = load_task_dataset(task)
    rows = get_split(dsd, split or info.train_split, info.name)
    if len(rows) > max_instances:
        rows = rows.shuffle(seed=seed).select(range(max_instances))
    length = resolve_max_length(info, tokenizer, requested=max_length, model_config=model_config)
    prepared = prepare_split(info, task, tokenizer, rows, split or "train", length, train=True)
    out = prepared.model_inputs().to_list()
    if not out or "labels" not in out[0]:
        raise DataError(f"split {split or 'train'!r} of task {info.name!r} has no labelled rows", field="task")
    return out
