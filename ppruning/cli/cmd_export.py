"""``ppruning export``: write a saved (pruned) model as ONNX, check it, time it.

    ppruning export run/model --format onnx --output run/onnx
    ppruning export run/model --format onnx --output run/onnx --dense sentence-transformers/all-MiniLM-L6-v2 \\
        --quantize int8

Prints the report as JSON: max |onnxruntime - PyTorch|, onnxruntime latency of the
pruned and the dense export (and of the int8 one), file sizes. Needs the ``export``
extra: ``pip install 'ppruning-service[export]'``.
"""

from __future__ import annotations

import argparse
import json

from ppruning.errors import InvalidConfigError
from ppruning.export import EXPORT_INSTALL, missing_export_modules


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a saved model to ONNX", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="folder (or hub id) of a saved model, pruned or not")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--output", required=True, help="folder for model.onnx and export_report.json")
    p.add_argument("--revision", default=None, help="hub revision of MODEL")
    p.add_argument("--dense", default=None, help="dense model to compare with (default: the source in pruning.json)")
    p.add_argument("--quantize", choices=("int8",), default=None, help="also write a dynamic int8 quantisation")
    p.add_argument("--batch-size", type=int, default=1, help="batch of the latency measurement")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length of the latency measurement")
    p.add_argument("--repeats", type=int, default=30, help="timed runs (median reported)")
    p.add_argument("--max-abs-diff", type=float, default=1e-4, help="fail when the parity check exceeds this")
    p.add_argument("--task", default=None, help="also score the exports (and the int8 one) on this task's labels")
    p.add_argument("--data-files", action="append", default=[], metavar="SPLIT=PATH[,SPLIT=PATH]",
                   help="custom tasks: validation=b.csv (the split scored)")  # fmt: skip
    p.add_argument("--text-column", default=None, help="custom tasks: the text column (default 'text')")
    p.add_argument("--text-pair-column", default=None, help="text-pair tasks: the second text column")
    p.add_argument("--label-column", default=None, help="custom tasks: the label column (default 'label')")
    p.add_argument("--max-eval-samples", type=int, default=500, help="examples scored per export")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    missing = missing_export_modules()
    if missing:
        raise InvalidConfigError(
            f"ONNX export needs the export extra ({', '.join(missing)} missing): {EXPORT_INSTALL}", field="format"
        )
    from pathlib import Path

    from ppruning.export.onnx import export_onnx

    task = None
    if args.task:
        from ppruning.cli.task_args import task_dict
        from ppruning.tasks.refs import TaskRef

        task = TaskRef.model_validate(task_dict(args))
    report = export_onnx(
        args.model, Path(args.output), dense=args.dense, revision=args.revision, quantize=args.quantize,
        batch=args.batch_size, seq_len=args.seq_len, repeats=args.repeats, task=task,
        max_eval_samples=args.max_eval_samples,
    )
    print(json.dumps(report, indent=2, sort_keys=True))
    diff = report["pruned"]["max_abs_diff"]
    if diff > args.max_abs_diff:
        print(f"ppruning: parity check failed: max |onnxruntime - torch| = {diff:.3g} > {args.max_abs_diff:g}")
        return 1
    return 0
