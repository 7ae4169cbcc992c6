"""``ppruning finetune``: fine-tune a pruned model (or a full model cut by mask files first) and score it.

    ppruning finetune --model out/model --task sst2 --preset paper --output ft/
    ppruning finetune --model bert-base-uncased --masks out/ --task mrpc --epochs 3 --output ft/
    ppruning finetune --model out/model --task text-classification \\
        --data-files train=a.csv,validation=b.csv --text-column review --label-column stars --output ft/

Writes ft/model/ (reloadable with ``ppruning.load_pruned``), metrics.json, trainer_log.jsonl and
finetune_report.json, and prints the metrics as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ppruning.cli.checks import check_model, check_output_folder
from ppruning.cli.task_args import (
    add_task_arguments,
    quiet_libraries,
    task_dict,
    third_party_bars_off,
    validation_error,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a pruned model on a task and score it",
        description="Fine-tune with the HF Trainer; checkpoints selected on held-out train data; "
        "writes model/, metrics.json, trainer_log.jsonl and finetune_report.json into --output.",
    )
    p.add_argument("--model", required=True, help="pruned folder (from `ppruning prune`), hub id or local model")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit")
    p.add_argument("--masks", default=None, help="folder with head_mask.pt/neuron_mask.pt: cut --model before training")
    add_task_arguments(p)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--preset", choices=["paper"], default=None, help="the paper's hyperparameters for the task")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-eval-samples", type=int, default=None)
    p.add_argument("--early-stopping-patience", type=int, default=None, help="epochs without improvement")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32", help="fp16/bf16 need CUDA")
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):  # -> FinetuneConfig
    from pydantic import ValidationError

    from ppruning.run.config import FinetuneConfig

    check_model(args.model)
    check_output_folder(args.output)
    raw = {
        "model": {"id": args.model, "revision": args.revision},
        "task": task_dict(args),
        "masks": args.masks,
        "preset": args.preset,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "max_length": args.max_length,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "max_train_samples": args.max_train_samples,
        "max_eval_samples": args.max_eval_samples,
        "early_stopping_patience": args.early_stopping_patience,
        "precision": args.precision,
        "seed": args.seed,
        "device": args.device,
    }
    try:
        return FinetuneConfig.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def run(args: argparse.Namespace) -> int:
    from ppruning.finetune import finetune
    from ppruning.progress import Progress, StderrProgress

    config = build_config(args)
    quiet_libraries() if args.quiet else third_party_bars_off()  # our progress, not theirs besides it
    progress = Progress() if args.quiet else StderrProgress()
    result = finetune(config, args.output, progress)
    summary = {
        "model_dir": str(result.model_dir),
        "main_metric": result.main_metric,
        "metrics": result.metrics,
        "best_epoch": result.report.get("best_epoch"),
        "train_time_s": result.report.get("train_time_s"),
        "parameters": result.report.get("parameters"),
    }
    if not result.metrics and args.quiet:  # otherwise the progress printer showed it
        print(f"ppruning: warning: {result.report['evaluation_note']}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0
