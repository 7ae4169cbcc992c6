"""Loading a task's data: the hub dataset, a local override of it, or the user's own files.

Registered tasks load with ``datasets.load_dataset(info.dataset, info.dataset_config)``.
One supported override replaces that download with local files, for machines without
the hub (and for the tests): when the environment variable ``PPRUNING_DATASETS_DIR``
is set and ``$PPRUNING_DATASETS_DIR/<task>/`` exists, every ``<split>.jsonl`` in it is
a split, shaped like the hub dataset (same columns, label ids). This module is the one
place the library reads that variable.

Custom tasks load their ``data_files`` with the ``csv``/``json``/``text`` builders.
Classification labels become a ``ClassLabel`` column (string labels sorted, ids kept
when they are already 0..K-1), so every split shares one mapping and the label names
travel with the data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ppruning.errors import DataError
from ppruning.tasks.features import LM_GROUP_ROWS, encode_pretraining_inputs, resolve_max_length
from ppruning.tasks.refs import TaskRef, file_format, task_columns, validate_task_ref
from ppruning.tasks.registry import TaskInfo

DATASETS_DIR_ENV = "PPRUNING_DATASETS_DIR"


def datasets_override_dir(task_name: str) -> Path | None:
    """``$PPRUNING_DATASETS_DIR/<task>`` when the override is set and holds that task, else None."""
    root = os.environ.get(DATASETS_DIR_ENV)
    if not root:
        return None
    folder = Path(root) / task_name
    return folder if folder.is_dir() else None


def load_task_dataset(
    task: TaskRef, info: TaskInfo | None = None, label_names: list[str] | None = None, *, with_labels: bool = True
) -> Any:
    """The task's splits as a ``datasets.DatasetDict``, columns checked, labels encoded.

    ``info``: the task as the caller already resolved it (a plan); else it is resolved here.
    ``label_names``: class names in id order (a trained model's), used when there is no
    train split to read them from (scoring a custom task's validation file alone).
    ``with_labels=False``: only the texts are wanted (a method that reads unlabeled inputs),
    so a file without the label column is fine and labels are neither checked nor encoded.
    """
    info = info or validate_task_ref(task)
    if info.custom:
        dsd = _load_custom(task)
    else:
        override = datasets_override_dir(info.name)
        dsd = _load_override(info, override) if override else _load_hub(info)
    text_columns, label_column = task_columns(info, task)
    if not with_labels:
        label_column = None
    _check_columns(info, dsd, text_columns, label_column)
    if info.kind == "classification" and label_column:
        dsd = _encode_labels(info, dsd, label_column, label_names)
    return dsd


def get_split(dsd: Any, split: str, task_name: str) -> Any:
    """One split, or a DataError naming the splits there are."""
    if split not in dsd:
        raise DataError(
            f"task {task_name!r} has no split {split!r}; it has: {', '.join(dsd) or '(none)'}",
            field="task.data_files",
        )
    return dsd[split]


def tokenized_inputs(
    task: TaskRef,
    tokenizer: Any,
    *,
    split: str = "train",
    max_instances: int,
    seed: int,
    max_length: int | None = None,
    model_config: Any = None,
    info: TaskInfo | None = None,
) -> Any:
    """Up to ``max_instances`` examples of ``split``, tokenised as for fine-tuning, without labels.

    The selection is a seeded shuffle, so the same seed gives the same examples. Columns:
    ``input_ids``, ``attention_mask`` and ``token_type_ids`` when the tokenizer makes
    them. Pairs are encoded as pairs; QA as question + context truncated to the max
    length (the first window); causal LM as blocks of the max length cut from the
    concatenated text. The max length is ``max_length``, else the task's, capped by the
    model's context (``model_config`` when given, else the tokenizer's limit).
    """
    if max_instances < 1:
        raise DataError("max_instances must be at least 1", field="params.max_instances")
    info = info or validate_task_ref(task)
    dsd = load_task_dataset(task, info, with_labels=False)  # inputs only: unlabeled texts are enough
    data = get_split(dsd, split, info.name)
    text_columns, _ = task_columns(info, task)
    length = resolve_max_length(info, tokenizer, requested=max_length, model_config=model_config)
    if info.kind == "causal-lm":
        encoded = _lm_blocks_sample(info, tokenizer, data, text_columns, length, max_instances, seed)
    else:
        if len(data) > max_instances:
            data = data.shuffle(seed=seed).select(range(max_instances))
        encoded = encode_pretraining_inputs(info, tokenizer, data, text_columns, length)
    if info.kind == "causal-lm" and len(encoded) > max_instances:
        encoded = encoded.shuffle(seed=seed).select(range(max_instances))
    if len(encoded) == 0:
        raise DataError(f"split {split!r} of task {info.name!r} has no usable text", field="task")
    return encoded.flatten_indices()


def _lm_blocks_sample(
    info: TaskInfo, tokenizer: Any, data: Any, text_columns: tuple[str, ...], length: int, want: int, seed: int
) -> Any:
    """Enough LM blocks for ``want`` without tokenising a whole large corpus (WikiText-103: 1.8M lines).

    Blocks are cut per group of ``LM_GROUP_ROWS`` consecutive lines (as in fine-tuning), so
    tokenising seeded random groups until there are enough blocks yields a subset of the
    very blocks fine-tuning sees; the final choice among them is seeded too.
    """
    import datasets

    groups = list(range(0, len(data), LM_GROUP_ROWS))
    if len(groups) <= 2:
        return encode_pretraining_inputs(info, tokenizer, data, text_columns, length)
    order = np.random.default_rng(seed).permutation(len(groups))
    parts, have = [], 0
    for g in order:
        start = groups[g]
        chunk = data.select(range(start, min(start + LM_GROUP_ROWS, len(data))))
        blocks = encode_pretraining_inputs(info, tokenizer, chunk, text_columns, length)
        parts.append(blocks)
        have += len(blocks)
        if have >= want * 2:  # some slack, so the seeded choice below still has something to choose
            break
    return datasets.concatenate_datasets(parts)


# --------------------------------------------------------------------------- loaders


def _load_hub(info: TaskInfo) -> Any:
    import datasets

    try:
        return datasets.load_dataset(info.dataset, info.dataset_config)
    except Exception as exc:  # the hub, the network, a gated repo: the user needs to know which
        raise DataError(
            f"could not load dataset {info.dataset!r} (config {info.dataset_config!r}) for task {info.name!r}: "
            f"{exc}. Offline, set {DATASETS_DIR_ENV} to a folder holding {info.name}/<split>.jsonl.",
            field="task.name",
        ) from exc


def _load_override(info: TaskInfo, folder: Path) -> Any:
    import datasets

    files = {p.stem: str(p) for p in sorted(folder.glob("*.jsonl"))}
    if not files:
        raise DataError(f"{folder} holds no <split>.jsonl files for task {info.name!r}", field="task.name")
    return datasets.DatasetDict(
        {split: datasets.load_dataset("json", data_files={split: path}, split=split) for split, path in files.items()}
    )


def _load_custom(task: TaskRef) -> Any:
    import datasets

    assert task.data_files is not None  # validate_task_ref made sure
    splits = {}
    for split, path in task.data_files.items():
        if not Path(path).is_file():
            raise DataError(f"data_files.{split}: no such file {path!r}", field="task.data_files")
        builder = file_format(path)
        kwargs: dict[str, Any] = {"delimiter": "\t"} if path.lower().endswith(".tsv") else {}
        try:
            splits[split] = datasets.load_dataset(builder, data_files={split: path}, split=split, **kwargs)
        except Exception as exc:
            raise DataError(
                f"data_files.{split}: could not read {path!r} as {builder}: {exc}", field="task.data_files"
            ) from exc
    return datasets.DatasetDict(splits)


# --------------------------------------------------------------------------- checks and labels


def _check_columns(info: TaskInfo, dsd: Any, text_columns: tuple[str, ...], label_column: str | None) -> None:
    custom_field = {0: "task.text_column", 1: "task.text_pair_column"}
    for split, data in dsd.items():
        names = set(data.column_names)
        for i, column in enumerate(text_columns):
            if column not in names:
                raise DataError(
                    f"split {split!r} of task {info.name!r} has no column {column!r}; it has: "
                    f"{', '.join(data.column_names)}" + (f" (set {custom_field[i]})" if info.custom else ""),
                    field=custom_field[i] if info.custom else "task.name",
                )
        if label_column and label_column not in names and split == "train":
            raise DataError(
                f"split 'train' of task {info.name!r} has no label column {label_column!r}; it has: "
                f"{', '.join(data.column_names)}" + (" (set task.label_column)" if info.custom else ""),
                field="task.label_column" if info.custom else "task.name",
            )


def label_names(dsd: Any, label_column: str) -> list[str]:
    """The class names in id order, read from the encoded train split."""
    feature = dsd["train"].features[label_column]
    return list(feature.names)


def _encode_labels(info: TaskInfo, dsd: Any, column: str, known: list[str] | None = None) -> Any:
    import datasets

    if "train" not in dsd:
        if not known and not info.label_names:
            raise DataError(
                f"task {info.name!r} has no train split to read its label names from", field="task.data_files"
            )
        return _encode_with_names(info, dsd, column, list(info.label_names or known))  # type: ignore[arg-type]
    train = dsd["train"]
    if isinstance(train.features[column], datasets.ClassLabel):
        return dsd
    if info.label_names:
        names = list(info.label_names)
        mapping: dict[Any, int] | None = None
    else:
        values = {v for v in train[column] if v is not None}
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values) and values == set(range(len(values))):
            names, mapping = [str(v) for v in sorted(values)], None
        else:
            names = sorted({str(v) for v in values})
            mapping = {name: i for i, name in enumerate(names)}
    if len(names) < 2:
        raise DataError(f"task {info.name!r}: the train split has fewer than two labels", field="task.label_column")
    return _cast_labels(info, dsd, column, names, mapping)


def _encode_with_names(info: TaskInfo, dsd: Any, column: str, names: list[str]) -> Any:
    """Labels of splits scored without a train split: the given names (ids as given when they are ids)."""
    values = {v for data in dsd.values() if column in data.column_names for v in data[column] if v is not None}
    ids = all(isinstance(v, int) and not isinstance(v, bool) for v in values) and values <= set(range(len(names)))
    return _cast_labels(info, dsd, column, names, None if ids else {name: i for i, name in enumerate(names)})


def _cast_labels(info: TaskInfo, dsd: Any, column: str, names: list[str], mapping: dict[Any, int] | None) -> Any:
    import datasets

    feature = datasets.ClassLabel(names=names)
    out = {}
    for split, data in dsd.items():
        if column not in data.column_names:
            out[split] = data
            continue
        if mapping is not None:
            data = _map_labels(data, column, mapping, split, info.name)
        out[split] = data.cast_column(column, feature)
    return datasets.DatasetDict(out)


def _map_labels(data: Any, column: str, mapping: dict[Any, int], split: str, task_name: str) -> Any:
    unknown = sorted({str(v) for v in data[column] if v is not None and str(v) not in mapping})
    if unknown:
        raise DataError(
            f"split {split!r} of task {task_name!r} has labels not in train: {', '.join(unknown[:5])}",
            field="task.label_column",
        )

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return {column: [-1 if v is None else mapping[str(v)] for v in batch[column]]}

    return data.map(encode, batched=True, desc=None).cast_column(column, _int_feature())


def _int_feature() -> Any:
    import datasets

    return datasets.Value("int64")
