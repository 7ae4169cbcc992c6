"""Fine-tuning, the second stage of P-pruning: train the pruned model on the task, then score it.

The HF ``Trainer`` does the optimisation (dynamic padding, seed, gradient accumulation,
bf16/fp16 on CUDA when asked). Checkpoints are selected per epoch on a held-out slice
of train when the reported split must stay unseen (GLUE, SQuAD), or on the task's
selection split (LM: validation). Writes ``model/`` (reloadable with
:func:`ppruning.load_pruned`), ``metrics.json``, ``trainer_log.jsonl`` and
``finetune_report.json``; ``model/README.md`` is its model card (the task metrics, and how a pruned
source was pruned, carried from that source's card).
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ppruning.errors import DataError, InvalidConfigError
from ppruning.finetune.callbacks import JsonlLogCallback, ProgressCallback, SelectionCallback
from ppruning.finetune.hparams import Hyperparameters, resolve_hparams
from ppruning.model.loading import load_task_model, resolve_device
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.distill import load_teacher
from ppruning.run.config import FinetuneConfig
from ppruning.run.outputs.model_card import finetuned_card, write_card
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.prepare import PreparedSplit, has_labels, prepare_split
from ppruning.tasks.registry import TaskInfo

#: Share of train held out for checkpoint selection when the task has no usable selection split.
HELD_OUT_FRACTION = 0.1
HELD_OUT_MAX = 2000


@dataclass
class FinetuneResult:
    output_dir: Path
    model_dir: Path
    metrics: dict[str, dict[str, float]]
    main_metric: str
    report: dict[str, Any] = field(default_factory=dict)


def finetune(config: FinetuneConfig, output_dir: Path, progress: Progress = NULL_PROGRESS) -> FinetuneResult:
    """Fine-tune ``config.model`` (pruned folder, or full model cut by ``config.masks``) on ``config.task``."""
    from transformers import set_seed

    from ppruning.tasks.data import get_split, label_names, load_task_dataset
    from ppruning.tasks.features import resolve_max_length
    from ppruning.tasks.refs import task_columns, validate_task_ref

    info = validate_task_ref(config.task)
    hp = resolve_hparams(config, info)
    device = resolve_device(config.device)
    if hp.precision != "fp32" and device.type != "cuda":
        raise InvalidConfigError(
            f"precision {hp.precision!r} needs a CUDA device; use fp32 on {device}", field="precision"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(hp.seed)

    progress.start_stage("load_data")
    dsd = load_task_dataset(config.task, info)
    _, label_column = task_columns(info, config.task)
    names = label_names(dsd, label_column) if info.kind == "classification" and label_column else None

    progress.start_stage("load_model")
    model, tokenizer, pruned = load_task_model(config.model, info, label_names=names, masks_dir=config.masks)
    weight_masks = _keep_weight_masks(model, Path(config.model.id))
    teacher = None
    if config.distill is not None:
        progress.event(f"distilling from {config.distill.teacher.id}")
        teacher = load_teacher(
            config.distill, info, outputs=model.config.num_labels, label_names=names, student_tokenizer=tokenizer
        )
    max_length = resolve_max_length(info, tokenizer, requested=hp.max_length, model_config=model.config)

    train_rows = get_split(dsd, info.train_split, info.name)
    train_rows, selection_rows, selection_name = _selection_split(info, dsd, train_rows, hp.seed)
    if config.max_train_samples and len(train_rows) > config.max_train_samples:
        train_rows = train_rows.shuffle(seed=hp.seed).select(range(config.max_train_samples))
    selection_rows = _cap(selection_rows, config.max_eval_samples)
    train = prepare_split(info, config.task, tokenizer, train_rows, "train", max_length, train=True)
    selection = prepare_split(info, config.task, tokenizer, selection_rows, selection_name, max_length, train=False)
    if len(train.features) == 0:
        raise DataError(f"task {info.name!r}: no training examples left after preprocessing", field="task")
    data_record = _data_record(config, info, train, hp.seed, max_length)

    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".trainer-") as scratch:
        trained, run = _train(
            model,
            tokenizer,
            info,
            hp,
            device,
            train,
            selection,
            Path(scratch),
            output_dir,
            config.early_stopping_patience,
            progress,
            teacher=teacher,
            distill=config.distill,
        )
    del teacher

    progress.start_stage("evaluate")
    from ppruning.measure.evaluate import score_split

    metrics: dict[str, dict[str, float]] = {}
    for split in info.eval_splits:
        if split not in dsd or not has_labels(info, config.task, dsd[split]):
            continue
        rows = _cap(dsd[split], config.max_eval_samples)
        prepared = prepare_split(info, config.task, tokenizer, rows, split, max_length, train=False)
        metrics[split] = score_split(trained, tokenizer, info, prepared, batch_size=hp.batch_size)

    evaluation_note = None
    if not metrics:
        evaluation_note = (
            f"task {info.name!r} has no labelled evaluation split ({', '.join(info.eval_splits)}), so nothing was "
            "scored; give one (custom tasks: validation=FILE or test=FILE in data_files)"
        )
        progress.event(evaluation_note, level="warning")

    progress.start_stage("write")
    model_dir = _save(trained, tokenizer, output_dir / "model", pruned, info, config)
    if weight_masks:  # the fine-tuned checkpoint keeps the masks it was trained under
        _copy_weight_masks(Path(config.model.id), model_dir)
    written = metrics if metrics else {"scored": False, "note": evaluation_note}
    (output_dir / "metrics.json").write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    report = _report(config, info, hp, pruned, trained, run, metrics, selection_name, len(train_rows), max_length)
    report["evaluation_note"] = evaluation_note
    from ppruning.run.provenance import write_record

    spec = config.model_dump(mode="json")
    report["record"] = write_record("finetune", spec, config.model, trained.config, data_record, output_dir, model_dir)
    (output_dir / "finetune_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_card(finetuned_card(json.loads(json.dumps(report, default=str)), model_dir), model_dir)
    return FinetuneResult(output_dir, model_dir, metrics, info.main_metric, report)


def _copy_weight_masks(source: Path, model_dir: Path) -> None:
    import shutil

    from ppruning.units.weight_masks import MANIFEST_FILE, MASKS_FILE

    for name in (MASKS_FILE, MANIFEST_FILE):
        shutil.copyfile(source / name, model_dir / name)


def _keep_weight_masks(model: Any, folder: Path) -> bool:
    """A checkpoint carrying weight masks (an unstructured prune) trains with its pruned weights held at zero."""
    from ppruning.units.weight_masks import MANIFEST_FILE, keep_masked_weights_zero, load_weight_masks

    if not (folder / MANIFEST_FILE).is_file():
        return False
    masks, _ = load_weight_masks(folder)
    keep_masked_weights_zero(model, masks)
    return True


def _data_record(config: FinetuneConfig, info: TaskInfo, train: PreparedSplit, seed: int, max_length: int) -> dict:
    """The training data's fingerprint: source, split, selection and a hash of the tokenised rows trained on."""
    from ppruning.run.provenance import data_fingerprint

    rows = train.features.select_columns(["input_ids"])
    selection = {"seed": seed, "max_train_samples": config.max_train_samples, "max_length": max_length}
    return data_fingerprint(config.task, info.train_split, rows, **selection)


def _cap(rows: Any, limit: int | None) -> Any:
    return rows.select(range(limit)) if limit and len(rows) > limit else rows


def _selection_split(info: TaskInfo, dsd: Any, train: Any, seed: int) -> tuple[Any, Any, str]:
    """(train rows, selection rows, selection name): the task's selection split, else a held-out train slice."""
    if info.selection_split and info.selection_split in dsd and len(dsd[info.selection_split]) > 0:
        return train, dsd[info.selection_split], info.selection_split
    if len(train) < 2:
        raise DataError(f"task {info.name!r}: train needs at least 2 rows (one is held out)", field="task")
    held = max(1, min(int(round(len(train) * HELD_OUT_FRACTION)), HELD_OUT_MAX))
    parts = train.train_test_split(test_size=held, seed=seed, shuffle=True)
    return parts["train"], parts["test"], "held_out_train"


def _train(
    model: Any,
    tokenizer: Any,
    info: TaskInfo,
    hp: Hyperparameters,
    device: torch.device,
    train: PreparedSplit,
    selection: PreparedSplit,
    scratch: Path,
    output_dir: Path,
    patience: int | None,
    progress: Progress,
    *,
    teacher: Any = None,
    distill: Any = None,
) -> tuple[Any, dict[str, Any]]:
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from ppruning.measure.evaluate import score_split

    args = TrainingArguments(
        output_dir=str(scratch),
        per_device_train_batch_size=hp.batch_size,
        num_train_epochs=hp.epochs,
        learning_rate=hp.learning_rate,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        seed=hp.seed,
        data_seed=hp.seed,
        bf16=hp.precision == "bf16",
        fp16=hp.precision == "fp16",
        use_cpu=device.type == "cpu",
        logging_strategy="steps",
        logging_steps=10,
        logging_first_step=True,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    log = JsonlLogCallback(output_dir / "trainer_log.jsonl")
    progress_cb = ProgressCallback(progress, info.main_metric)

    def on_score(record: dict[str, Any]) -> None:
        progress_cb.metric = record["selection"].get(info.main_metric)
        log.write(record)
        progress.event(f"epoch {record['epoch']}: {info.main_metric}={progress_cb.metric} on {selection.name}")

    select = SelectionCallback(
        lambda m: score_split(m, tokenizer, info, selection, batch_size=hp.batch_size),
        info.main_metric,
        info.greater_is_better,
        patience,
        on_score,
    )
    common = dict(
        model=model,
        args=args,
        train_dataset=train.model_inputs(),
        data_collator=PadCollator(tokenizer),
        callbacks=[progress_cb, log, select],
        processing_class=tokenizer,
    )
    if teacher is not None:
        from ppruning.finetune.distill_trainer import DistillTrainer

        trainer: Trainer = DistillTrainer(**common, teacher=teacher.to(device), distill=distill)
    else:
        trainer = Trainer(**common)
    trainer.remove_callback(PrinterCallback)  # progress goes to the listener and the JSONL log, not stdout
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - start
    select.restore_best(trainer.model)
    tokens = sum(len(x) for x in train.features["input_ids"])
    epochs_done = float(trainer.state.epoch or hp.epochs)
    run = {
        "train_time_s": round(seconds, 3),
        "train_examples": len(train.features),
        "train_samples_per_second": round(len(train.features) * epochs_done / seconds, 3),
        "train_tokens_per_second": round(tokens * epochs_done / seconds, 1),
        "train_steps": trainer.state.global_step,
        "epochs_run": epochs_done,
        "final_train_loss": float(output.training_loss),
        "peak_memory_mb": _peak_memory_mb(device),
        "peak_memory_kind": "cuda_max_allocated" if device.type == "cuda" else "process_max_rss",
        "best_epoch": select.best_epoch,
        "best_selection_value": select.best_value,
        "selection_history": select.history,
        "device": str(device),
        "distill": distill.model_dump(mode="json") if distill is not None else None,
    }
    return trainer.model.eval(), run


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def _save(model: Any, tokenizer: Any, model_dir: Path, pruned: bool, info: TaskInfo, config: FinetuneConfig) -> Path:
    model = model.to("cpu")
    if pruned:
        from ppruning.model.checkpoint import save_pruned

        return save_pruned(model, tokenizer, model_dir, extra={"finetuned_on": info.name, "source": config.model.id})
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def _report(
    config: FinetuneConfig,
    info: TaskInfo,
    hp: Hyperparameters,
    pruned: bool,
    model: Any,
    run: dict[str, Any],
    metrics: dict[str, dict[str, float]],
    selection_name: str,
    train_rows: int,
    max_length: int,
) -> dict[str, Any]:
    import transformers

    from ppruning.model.surgery import count_parameters
    from ppruning.version import __version__

    return {
        "task": info.name,
        "model": config.model.model_dump(),
        "masks": config.masks,
        "pruned": pruned,
        "parameters": count_parameters(model),
        "hyperparameters": {**hp.as_dict(), "max_length_used": max_length},
        "selection_split": selection_name,
        "train_rows": train_rows,
        "main_metric": info.main_metric,
        "metrics": metrics,
        **run,
        "versions": {
            "ppruning": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
