"""A reference to a task (:class:`TaskRef`) and its checks without reading any data: cheap enough for submission.

The API calls :func:`validate_task_ref` when a job is submitted, so a custom task
without its files, or a hub task given custom-task options, is rejected with the field
named before any worker starts.
"""

from __future__ import annotations

from pathlib import PurePath

from pydantic import BaseModel, ConfigDict, Field

from ppruning.errors import InvalidConfigError
from ppruning.tasks.registry import TaskInfo, get_task

#: File suffix -> ``datasets`` builder for custom tasks.
FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text", ".raw": "text"}
CUSTOM_SPLITS = ("train", "validation", "test")
_CUSTOM_FIELDS = ("data_files", "text_column", "text_pair_column", "label_column")


class TaskRef(BaseModel):
    """A registered task by name; custom tasks also name their files and columns."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    name: str = Field(min_length=1, max_length=128, description="A registered task, e.g. 'sst2'.")
    data_files: dict[str, str] | None = Field(
        default=None, description="Custom tasks: split name -> local file (CSV, JSON or text)."
    )
    text_column: str | None = Field(default=None, max_length=256)
    text_pair_column: str | None = Field(default=None, max_length=256)
    label_column: str | None = Field(default=None, max_length=256)


def validate_task_ref(ref: TaskRef, *, need_train: bool = True) -> TaskInfo:
    """Return the task's info, or raise UnknownTaskError / InvalidConfigError naming the field.

    ``need_train=False``: the caller only scores (``evaluate``), so a custom task needs no
    train file; its labels are read with the model's own label names instead.
    """
    info = get_task(ref.name)
    given = {f for f in _CUSTOM_FIELDS if getattr(ref, f) is not None}
    allowed = set(info.required_fields) | set(info.optional_fields)
    for name in sorted(given - allowed):
        raise InvalidConfigError(
            f"task {info.name!r} does not take {name!r}"
            + ("" if info.custom else "; it loads its own dataset (use a custom task such as 'text-classification')"),
            field=f"task.{name}",
        )
    for name in info.required_fields:
        if getattr(ref, name) is None:
            raise InvalidConfigError(f"task {info.name!r} needs {name!r}", field=f"task.{name}")
    if ref.data_files is not None:
        _check_data_files(ref.data_files, need_train)
    return info


def _check_data_files(files: dict[str, str], need_train: bool) -> None:
    for split in files:
        if split not in CUSTOM_SPLITS:
            raise InvalidConfigError(
                f"unknown split {split!r} in data_files; use {', '.join(CUSTOM_SPLITS)}", field="task.data_files"
            )
    if need_train and "train" not in files:
        raise InvalidConfigError("data_files needs a 'train' file", field="task.data_files")
    if not files:
        raise InvalidConfigError("data_files names no file", field="task.data_files")
    for split, path in files.items():
        if file_format(path) is None:
            raise InvalidConfigError(
                f"data_files.{split}: {path!r} is not {', '.join(sorted(FILE_FORMATS))}", field="task.data_files"
            )


def file_format(path: str) -> str | None:
    """The ``datasets`` builder for a custom-task file, from its suffix (None when unknown)."""
    return FILE_FORMATS.get(PurePath(path).suffix.lower())


def task_columns(info: TaskInfo, ref: TaskRef) -> tuple[tuple[str, ...], str | None]:
    """The text columns and label column to read: the task's own, or the custom ones the ref names."""
    if not info.custom:
        return info.text_columns, info.label_column
    text = ref.text_column or info.text_columns[0]
    pair = ref.text_pair_column or (info.text_columns[1] if len(info.text_columns) > 1 else None)
    label = None if info.kind == "causal-lm" else (ref.label_column or info.label_column)
    return ((text, pair) if pair else (text,)), label
