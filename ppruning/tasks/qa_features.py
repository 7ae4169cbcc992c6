"""Extractive QA: contexts split into overlapping windows, and answers recovered from logits.

The definitions follow transformers' question-answering example so our EM/F1 compare
with everyone's: a training window whose context does not contain the answer (or a
v2 question without one) points at the [CLS] token; at evaluation the best span over
all windows of an example wins, among the ``n_best`` start and end logits, with at most
``max_answer_length`` tokens; for v2 the empty answer wins when the [CLS] score beats
the best span (null-score threshold 0).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ppruning.tasks.registry import TaskInfo


def doc_stride(info: TaskInfo, max_length: int) -> int:
    """The task's stride, shrunk for short max lengths (the stride must leave room for the question)."""
    return max(1, min(int(info.extra.get("doc_stride", 128)), max_length // 3))


def _tokenize(tokenizer: Any, examples: dict[str, list], max_length: int, stride: int) -> Any:
    questions = [q.lstrip() for q in examples["question"]]
    return tokenizer(
        questions,
        examples["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )


def _cls_index(tokenizer: Any, input_ids: list[int]) -> int:
    cls = tokenizer.cls_token_id
    return input_ids.index(cls) if cls is not None and cls in input_ids else 0


def train_features(tokenizer: Any, examples: dict[str, list], max_length: int, stride: int) -> dict[str, list]:
    """Windows with ``start_positions``/``end_positions`` (the [CLS] index when the answer is absent)."""
    enc = _tokenize(tokenizer, examples, max_length, stride)
    sample_map = enc.pop("overflow_to_sample_mapping")
    offsets_all = enc.pop("offset_mapping")
    starts, ends = [], []
    for i, offsets in enumerate(offsets_all):
        cls_index = _cls_index(tokenizer, enc["input_ids"][i])
        answers = examples["answers"][sample_map[i]]
        if not answers["answer_start"]:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        seq = enc.sequence_ids(i)
        first = seq.index(1)
        last = len(seq) - 1 - seq[::-1].index(1)
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        s = first
        while s <= last and offsets[s][0] <= start_char:
            s += 1
        e = last
        while e >= first and offsets[e][1] >= end_char:
            e -= 1
        starts.append(s - 1)
        ends.append(e + 1)
    enc["start_positions"] = starts
    enc["end_positions"] = ends
    return dict(enc)


def eval_features(tokenizer: Any, examples: dict[str, list], max_length: int, stride: int) -> dict[str, list]:
    """Windows with ``example_id`` and context-only ``offset_mapping`` (None elsewhere) for post-processing."""
    enc = _tokenize(tokenizer, examples, max_length, stride)
    sample_map = enc.pop("overflow_to_sample_mapping")
    enc["example_id"] = []
    for i in range(len(enc["input_ids"])):
        seq = enc.sequence_ids(i)
        enc["example_id"].append(examples["id"][sample_map[i]])
        enc["offset_mapping"][i] = [o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
    return dict(enc)


def postprocess(
    examples: Any,
    features: Any,
    start_logits: list[np.ndarray],
    end_logits: list[np.ndarray],
    *,
    version_2: bool,
    n_best: int = 20,
    max_answer_length: int = 30,
    null_threshold: float = 0.0,
) -> dict[str, str]:
    """Example id -> predicted answer text ("" for no answer in v2) from per-window logits."""
    by_example: dict[str, list[int]] = defaultdict(list)
    for i, example_id in enumerate(features["example_id"]):
        by_example[example_id].append(i)
    offsets_all = features["offset_mapping"]
    predictions: dict[str, str] = {}
    for example in examples:
        best_text, best_score = "", -np.inf
        null_score = np.inf
        for i in by_example.get(example["id"], []):
            start, end, offsets = start_logits[i], end_logits[i], offsets_all[i]
            null_score = min(null_score, float(start[0] + end[0]))
            for s in np.argsort(start)[-1 : -n_best - 1 : -1]:
                for e in np.argsort(end)[-1 : -n_best - 1 : -1]:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    score = float(start[s] + end[e])
                    if score > best_score:
                        best_score = score
                        best_text = example["context"][offsets[s][0] : offsets[e][1]]
        if version_2 and (best_score == -np.inf or null_score > best_score + null_threshold):
            best_text = ""
        predictions[example["id"]] = best_text
    return predictions
