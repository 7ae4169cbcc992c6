"""The task metric of exported models: what int8 quantisation costs, measured where it runs.

The exports are scored with onnxruntime on the task's first labelled evaluation split,
the same examples for every file, so "before" (the fp32 export of the pruned model) and
"after" (its int8 quantisation) differ only by the quantisation. The exported graph takes
``input_ids`` and ``attention_mask`` (see :mod:`ppruning.export.onnx`); heads whose metric
needs more than logits (QA spans, LM perplexity) are reported as not scored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ppruning.model.loading import load_tokenizer
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.data import get_split, load_task_dataset
from ppruning.tasks.features import resolve_max_length
from ppruning.tasks.metrics import classification_metrics, regression_metrics
from ppruning.tasks.prepare import has_labels, prepare_split
from ppruning.tasks.refs import TaskRef, validate_task_ref

SCORED_KINDS = ("classification", "regression")


def _label_names(model_dir: Path) -> list[str] | None:
    config = json.loads((model_dir / "config.json").read_text())
    id2label = config.get("id2label") or {}
    return [str(id2label[str(i)]) for i in range(len(id2label))] if len(id2label) > 1 else None


def _logits(path: Path, rows: Any, collate: PadCollator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, labels = [], []
    for start in range(0, len(rows), batch_size):
        batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
        feeds = {name: batch[name].numpy().astype(np.int64) for name in ("input_ids", "attention_mask")}
        logits.append(session.run(None, feeds)[0])
        labels.append(batch["labels"].numpy())
    return np.concatenate(logits), np.concatenate(labels)


def onnx_task_metrics(
    exports: dict[str, Path], model_dir: Path, task: TaskRef, *, max_eval_samples: int = 500, batch_size: int = 32
) -> dict[str, Any]:
    """``{"split", "examples", <export name>: metrics}`` for each of ``exports`` (name -> .onnx file)."""
    info = validate_task_ref(task, need_train=False)
    if info.kind not in SCORED_KINDS:
        return {"scored": False, "note": f"a {info.kind} task is not scored from exported logits"}
    tokenizer = load_tokenizer(Path(model_dir))
    dsd = load_task_dataset(task, info, label_names=_label_names(Path(model_dir)))
    split = next((s for s in info.eval_splits if s in dsd and has_labels(info, task, dsd[s])), None)
    if split is None:
        return {"scored": False, "note": f"task {info.name!r} has no labelled evaluation split here"}
    data = get_split(dsd, split, info.name)
    data = data.select(range(min(len(data), max_eval_samples)))
    length = resolve_max_length(info, tokenizer, requested=None)
    rows = prepare_split(info, task, tokenizer, data, split, length, train=False).model_inputs()
    collate = PadCollator(tokenizer)
    result: dict[str, Any] = {"scored": True, "split": split, "examples": len(rows)}
    for name, path in exports.items():
        logits, labels = _logits(path, rows, collate, batch_size)
        if info.kind == "regression":
            result[name] = regression_metrics(logits[:, 0], labels)
        else:
            result[name] = classification_metrics(info, logits, labels.astype(np.int64))
    return result
