"""Rows of a split -> the features a model trains or is scored on, per task kind.

Classification and regression: encoded text plus ``labels`` (rows with a hidden label,
-1, are dropped from scored splits). QA: windows with start/end positions for
training, windows with offsets and example ids for scoring (the raw examples travel
along for post-processing). Causal LM: blocks with ``labels`` equal to the inputs (the
model shifts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppruning.tasks.features import encode_text, lm_blocks
from ppruning.tasks.qa_features import doc_stride, eval_features, train_features
from ppruning.tasks.refs import TaskRef, task_columns
from ppruning.tasks.registry import TaskInfo

#: Columns the model's forward takes; anything else stays out of the batches.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "labels", "start_positions", "end_positions")


@dataclass
class PreparedSplit:
    name: str
    features: Any  # datasets.Dataset
    #: QA only: the raw examples (id, context, answers) for post-processing.
    examples: Any = None

    def model_inputs(self) -> Any:
        return self.features.select_columns([c for c in MODEL_INPUTS if c in self.features.column_names])


def prepare_split(
    info: TaskInfo, ref: TaskRef, tokenizer: Any, data: Any, name: str, max_length: int, *, train: bool
) -> PreparedSplit:
    text_columns, label_column = task_columns(info, ref)
    if info.kind == "causal-lm":
        blocks = lm_blocks(data, tokenizer, text_columns[0], max_length)
        return PreparedSplit(name, blocks.map(lambda b: {"labels": b["input_ids"]}, batched=True))
    if info.kind == "question-answering":
        stride = doc_stride(info, max_length)
        fn = train_features if train else eval_features
        feats = data.map(lambda b: fn(tokenizer, b, max_length, stride), batched=True, remove_columns=data.column_names)
        return PreparedSplit(name, feats, None if train else data)
    assert label_column is not None
    if label_column in data.column_names:
        data = data.filter(lambda b: [y is not None and y != -1 for y in b[label_column]], batched=True)
    regression = info.kind == "regression"

    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = dict(encode_text(tokenizer, batch, text_columns, max_length))
        if label_column in batch:
            enc["labels"] = [float(y) for y in batch[label_column]] if regression else batch[label_column]
        return enc

    return PreparedSplit(name, data.map(encode, batched=True, remove_columns=data.column_names))


def has_labels(info: TaskInfo, ref: TaskRef, data: Any) -> bool:
    """Whether a split can be scored: LM always; QA when it has answers; others when labels are not all hidden."""
    if info.kind == "causal-lm":
        return len(data) > 0
    if info.kind == "question-answering":
        return "answers" in data.column_names and len(data) > 0
    _, label_column = task_columns(info, ref)
    if not label_column or label_column not in data.column_names:
        return False
    return any(y is not None and y != -1 for y in data[label_column])
