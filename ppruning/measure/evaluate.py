"""Scoring a checkpoint on a task's labelled splits: the numbers a pruned model is judged by.

Classification: accuracy (+ F1 / Matthews where GLUE reports them); regression:
Pearson, Spearman and their mean; QA: start/end post-processing and the official
SQuAD EM/F1; causal LM: perplexity = exp(mean token NLL) over blocks of the block size
(512, or the model's context when shorter). Batches are dynamically padded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.metrics import classification_metrics, perplexity, regression_metrics
from ppruning.tasks.prepare import PreparedSplit, has_labels, prepare_split
from ppruning.tasks.qa_features import postprocess
from ppruning.tasks.refs import TaskRef
from ppruning.tasks.registry import TaskInfo
from ppruning.tasks.squad_scoring import squad_scores


def evaluate(
    model_path: str | Path,
    task: TaskRef,
    *,
    batch_size: int = 32,
    max_eval_samples: int | None = None,
    device: str = "auto",
    splits: tuple[str, ...] | None = None,
    max_length: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> dict[str, dict[str, float]]:
    """Metrics per scored split (the task's evaluation splits that have labels) of a saved model.

    ``model_path`` is a folder saved by fine-tuning or pruning (pruned or not). Splits
    whose labels are hidden (GLUE test) are skipped; ``splits`` picks others.
    """
    from ppruning.model.loading import load_saved_task_model, resolve_device
    from ppruning.tasks.data import get_split, load_task_dataset
    from ppruning.tasks.features import resolve_max_length
    from ppruning.tasks.refs import validate_task_ref

    info = validate_task_ref(task, need_train=False)  # scoring needs only the splits it scores
    dev = resolve_device(device)
    progress.start_stage("load_model")
    model, tokenizer = load_saved_task_model(Path(model_path), info, dev)
    progress.start_stage("load_data")
    dsd = load_task_dataset(task, info, label_names=_model_label_names(model))
    length = resolve_max_length(info, tokenizer, requested=max_length, model_config=model.config)
    results: dict[str, dict[str, float]] = {}
    wanted = splits or tuple(s for s in info.eval_splits if s in dsd)
    for split in wanted:
        data = get_split(dsd, split, info.name)
        if not has_labels(info, task, data):
            continue
        if max_eval_samples is not None and len(data) > max_eval_samples:
            data = data.select(range(max_eval_samples))
        prepared = prepare_split(info, task, tokenizer, data, split, length, train=False)
        progress.start_stage("evaluate", message=split)
        results[split] = score_split(model, tokenizer, info, prepared, batch_size=batch_size, progress=progress)
    return results


def _model_label_names(model: Any) -> list[str] | None:
    """The class names a trained classifier was saved with, in id order (None for other heads)."""
    id2label = getattr(model.config, "id2label", None) or {}
    return [str(id2label[i]) for i in range(len(id2label))] if len(id2label) > 1 else None


@torch.no_grad()
def score_split(
    model: Any,
    tokenizer: Any,
    info: TaskInfo,
    prepared: PreparedSplit,
    *,
    batch_size: int = 32,
    progress: Progress = NULL_PROGRESS,
) -> dict[str, float]:
    """The task's metrics for one prepared split; the model is left in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        outputs = _forward_all(model, tokenizer, prepared, batch_size, progress)
    finally:
        model.train(was_training)
    if info.kind == "causal-lm":
        nll, tokens = outputs
        mean = nll / max(tokens, 1)
        return {"perplexity": perplexity(mean), "loss": mean, "tokens": float(tokens)}
    if info.kind == "question-answering":
        starts, ends = outputs
        answers = postprocess(
            prepared.examples,
            prepared.features,
            starts,
            ends,
            version_2=bool(info.extra.get("version_2_with_negative")),
            n_best=int(info.extra.get("n_best", 20)),
            max_answer_length=int(info.extra.get("max_answer_length", 30)),
        )
        refs = {ex["id"]: ex["answers"] for ex in prepared.examples}
        return squad_scores(answers, refs)
    logits, labels = outputs
    if info.kind == "regression":
        return regression_metrics(logits[:, 0], labels)
    return classification_metrics(info, logits, labels.astype(np.int64))


def _forward_all(model: Any, tokenizer: Any, prepared: PreparedSplit, batch_size: int, progress: Progress) -> Any:
    collate = PadCollator(tokenizer)
    data = prepared.model_inputs()
    device = next(model.parameters()).device
    kind_lm = "labels" in data.column_names and isinstance(data[0]["labels"], list)
    nll, tokens = 0.0, 0
    logits_all, labels_all, starts, ends = [], [], [], []
    total = (len(data) + batch_size - 1) // batch_size
    for step, start in enumerate(range(0, len(data), batch_size), 1):
        rows = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        batch = {k: v.to(device) for k, v in collate(rows).items()}
        labels = batch.pop("labels", None)
        batch.pop("start_positions", None)
        batch.pop("end_positions", None)
        if kind_lm:
            out = model(**batch, labels=labels)
            count = int((labels[:, 1:] != -100).sum())
            nll += float(out.loss) * count
            tokens += count
        else:
            out = model(**batch)
            if hasattr(out, "start_logits"):
                lengths = batch["attention_mask"].sum(dim=1).tolist()
                for row, n in enumerate(lengths):
                    starts.append(out.start_logits[row, :n].float().cpu().numpy())
                    ends.append(out.end_logits[row, :n].float().cpu().numpy())
            else:
                logits_all.append(out.logits.float().cpu().numpy())
                labels_all.append(labels.cpu().numpy())
        progress.update(step, total)
        progress.checkpoint()
    if kind_lm:
        return nll, tokens
    if starts or not logits_all:
        return starts, ends
    return np.concatenate(logits_all), np.concatenate(labels_all)
