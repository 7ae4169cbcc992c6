"""``ppruning evaluate``: score a saved checkpoint (pruned or not) on a task's labelled splits.

    ppruning evaluate --model ft/model --task mnli
    ppruning evaluate --model ft/model --task squad_v2 --max-eval-samples 500 --device cuda

Prints {split: {metric: value}} as JSON (and writes it to --output when given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ppruning.cli.checks import check_model
from ppruning.cli.task_args import add_task_arguments, quiet_libraries, task_dict, validation_error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a saved model on a task", description=__doc__)
    p.add_argument("--model", required=True, type=Path, help="folder of a saved (fine-tuned) model")
    add_task_arguments(p)
    p.add_argument("--split", action="append", default=None, help="split to score (repeatable); default the task's")
    p.add_argument("--batch-size", type=int, default=32, help="examples per forward pass")
    p.add_argument("--max-length", type=int, default=None, help="token limit per example (default: the task's)")
    p.add_argument("--max-eval-samples", type=int, default=None, help="score at most this many examples per split")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N, mps")
    p.add_argument("--output", type=Path, default=None, help="also write the metrics JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no library progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ppruning.measure.evaluate import evaluate
    from ppruning.tasks.refs import TaskRef

    check_model(args.model)
    try:
        task = TaskRef.model_validate(task_dict(args))
    except ValidationError as exc:
        raise validation_error(exc) from None
    if args.quiet:
        quiet_libraries()
    metrics = evaluate(
        args.model,
        task,
        batch_size=args.batch_size,
        max_eval_samples=args.max_eval_samples,
        device=args.device,
        splits=tuple(args.split) if args.split else None,
        max_length=args.max_length,
    )
    text = json.dumps(metrics, indent=2, sort_keys=True)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)
    return 0
