"""The columns a custom task names, checked against its files' first line: cheap enough for submission.

:func:`ppruning.tasks.validate_task_ref` reads no data. This reads one line per file (a
CSV/TSV header, the first JSON Lines record), so a wrong ``text_column`` or
``label_column`` is refused when the job is submitted instead of failing in the worker.
Files it cannot judge from one line (a JSON array, plain text with its one ``text``
column aside) pass; loading the data checks them again.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ppruning.errors import DataError
from ppruning.tasks.refs import TaskRef, file_format, task_columns
from ppruning.tasks.registry import get_task

#: The longest first line read; a longer header is not checked here.
MAX_HEADER_BYTES = 1 << 20


def _first_line(path: Path) -> str:
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as f:
        return f.readline(MAX_HEADER_BYTES)


def file_columns(path: str) -> list[str] | None:
    """The column names of a custom-task file, from its first line; None when one line does not say."""
    kind = file_format(path)
    if kind == "text":
        return ["text"]
    line = _first_line(Path(path))
    if not line or len(line) >= MAX_HEADER_BYTES:
        return None
    if kind == "csv":
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
        return next(csv.reader([line], delimiter=delimiter), None)
    if kind == "json" and line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return list(record) if isinstance(record, dict) else None
    return None


def check_data_columns(ref: TaskRef, *, labels: bool = True) -> None:
    """Every split has the text columns, and the train split the label column, that the task will read.

    ``labels=False``: the job reads only the texts (a method that needs unlabeled inputs, no
    fine-tuning), so a file without the default label column is fine; a label column the
    spec names is still checked (a misspelled name is a mistake either way).
    """
    if not ref.data_files:
        return
    info = get_task(ref.name)
    text_columns, label_column = task_columns(info, ref)
    fields = ("task.text_column", "task.text_pair_column")
    for split, path in ref.data_files.items():
        try:
            names = file_columns(path)
        except OSError as exc:
            message = f"data_files.{split}: cannot read {path!r}: {exc.strerror}"
            raise DataError(message, field="task.data_files") from None
        if names is None:
            continue
        wanted = [(column, fields[i]) for i, column in enumerate(text_columns)]
        if label_column and split == "train" and (labels or ref.label_column is not None):
            wanted.append((label_column, "task.label_column"))
        for column, field in wanted:
            if column not in names:
                raise DataError(
                    f"split {split!r} has no column {column!r}; it has: {', '.join(names)} (set {field})", field=field
                )
