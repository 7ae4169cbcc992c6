"""The quality table, regenerated verbatim from the per-run files of ``bench/quality.py``.

    .venv/bin/python bench/quality_table.py bench/results_quality/rt > bench/results_quality/rt.md

Per variant and FLOPs target: accuracy retraining-free (the fine-tuned dense model pruned
and scored as it is) and after fine-tuning, each the mean over seeds; the paired
difference of the retraining-free accuracy against the reference variant, and of the
fine-tuned accuracy against dense and against the reference variant (``--reference``,
default ``ppruning-norecon``: P-pruning without reconstruction), each with a 95%
bootstrap interval; parameters and FLOPs as ratios to dense; fine-tune time and the
seconds reconstruction added (retraining-free runs).

The intervals are a paired, two-level bootstrap: each draw resamples the seeds present in
both runs (with replacement) and the scored examples (with replacement, the same indices
for both sides, since every run scores the same validation rows), then averages the
per-example differences. So they cover both training noise across seeds and the sampling
of the evaluation set. Each interval's RNG is seeded by the data it compares: the output is
the same on every run, and a new row leaves the others unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

DRAWS = 2000


def load(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def correct_by_seed(runs: list[dict[str, Any]], key: str) -> dict[int, np.ndarray]:
    return {r["seed"]: np.asarray(r[key]["correct"], dtype=np.float64) for r in runs if key in r}


def _mean(members: list[dict[str, Any]], *keys: str) -> float | None:
    values = []
    for r in members:
        value: Any = r
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.fmean(values) if values else None


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _seeds(members: list[dict[str, Any]], key: str) -> str:
    return ",".join(str(r["seed"]) for r in members if key in r) or "-"


def paired_interval(
    a: dict[int, np.ndarray], b: dict[int, np.ndarray], rng: np.random.Generator | None = None
) -> tuple:
    """(mean difference a - b, low, high) over the seeds both have; None when they share none.

    Without ``rng``, each comparison draws from its own generator seeded by the data it
    compares, so adding a row to the table leaves every other row's interval as it was.
    """
    if rng is None:
        digest = hashlib.sha256(b"".join(v.tobytes() for d in (a, b) for _, v in sorted(d.items()))).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = np.stack([a[s] - b[s] for s in seeds])  # [seeds, examples]
    n_seeds, n_ex = diffs.shape
    draws = np.empty(DRAWS)
    for i in range(DRAWS):
        rows = rng.integers(0, n_seeds, n_seeds)
        cols = rng.integers(0, n_ex, n_ex)
        draws[i] = diffs[np.ix_(rows, cols)].mean()
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def _fmt_diff(interval: tuple | None) -> str:
    if interval is None:
        return "-"
    mean, low, high = interval
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def table(runs: list[dict[str, Any]], reference: str) -> str:
    dense = [r for r in runs if r["variant"] == "dense"]
    if not dense:
        return "no dense runs yet"
    dense_correct = correct_by_seed(dense, "finetuned")
    dense_acc = statistics.fmean(r["finetuned"]["accuracy"] for r in dense)
    dense_params = statistics.fmean(r["parameters"] for r in dense)
    dense_wall = statistics.fmean(r["finetune_s"] for r in dense)
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in runs:
        if r["variant"] != "dense":
            groups.setdefault((r["target"], r["variant"]), []).append(r)
    settings = dense[0]["settings"]
    dense_each = ", ".join(f"{r['finetuned']['accuracy']:.3f}" for r in dense)
    lines = [
        f"Model `{'/'.join(Path(settings['model']).parts[-2:])}`, "
        f"task {settings['task']}, {settings['epochs']:g} epoch(s), lr {settings['learning_rate']:g}, "
        f"batch {settings['batch_size']}, max length {settings['max_length']}, "
        f"{settings['max_train_samples']} training examples, {settings['max_eval_samples']} scored "
        f"({dense[0]['finetuned']['split']}), methods read {settings['max_instances']} examples / "
        f"{settings['sampling_tokens']} sampled tokens.",
        "",
        f"Dense: accuracy {dense_acc:.4f} (seeds {', '.join(str(r['seed']) for r in dense)}: "
        f"{dense_each}), {dense_params:,.0f} parameters, "
        f"fine-tune {dense_wall:.0f} s.",
        "",
        f"| FLOPs cut | variant | seeds RF / FT | acc. retraining-free | RF Δ vs {reference}, points [95% CI] "
        f"| acc. fine-tuned | fine-tuned / dense "
        f"| Δ vs dense, points [95% CI] | Δ vs {reference}, points [95% CI] | params/dense | FLOPs/dense "
        "| fine-tune s | reconstruction s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (target, variant), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        members = sorted(members, key=lambda r: r["seed"])
        rf = _mean(members, "retraining_free", "accuracy")
        ft = _mean(members, "finetuned", "accuracy")
        mine = correct_by_seed(members, "finetuned")
        vs_dense = paired_interval(mine, dense_correct) if mine else None
        ref = groups.get((target, reference))
        vs_ref = rf_vs_ref = None
        if mine and ref and variant != reference:
            vs_ref = paired_interval(mine, correct_by_seed(ref, "finetuned"))
        mine_rf = correct_by_seed(members, "retraining_free")
        if mine_rf and ref and variant != reference:
            rf_vs_ref = paired_interval(mine_rf, correct_by_seed(ref, "retraining_free"))
        params = _mean(members, "parameters")
        recon = _mean(members, "retraining_free", "reconstruction", "seconds")
        lines.append(
            f"| {target:g} | {variant} | {_seeds(members, 'retraining_free')} / {_seeds(members, 'finetuned')} "
            f"| {_num(rf, '.4f')} | {_fmt_diff(rf_vs_ref)} | {_num(ft, '.4f')} | {_num(ft and ft / dense_acc, '.3f')} "
            f"| {_fmt_diff(vs_dense)} | {_fmt_diff(vs_ref)} "
            f"| {_num(params and params / dense_params, '.3f')} | {_num(_mean(members, 'flops_ratio'), '.3f')} "
            f"| {_num(_mean(members, 'finetune_s'), '.0f')} | {_num(recon, '.1f')} |"
        )
    lines += ["", "Per seed (retraining-free / fine-tuned accuracy):", ""]
    for (target, variant), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cells = ", ".join(
            f"seed {r['seed']} {_num(_mean([r], 'retraining_free', 'accuracy'), '.3f')} / "
            f"{_num(_mean([r], 'finetuned', 'accuracy'), '.3f')}"
            for r in sorted(members, key=lambda r: r["seed"])
        )
        lines.append(f"- {variant} @{target:g}: {cells}")
    errors = _reconstruction_errors(groups)
    if errors:
        lines += [
            "",
            "Reconstruction, per layer, mean over seeds of the relative output error "
            "||Y_dense - Y_pruned||² / ||Y_dense||² of the output projections (retraining-free runs, "
            "fine-tuned dense model; before → after):",
            "",
        ]
        lines += errors
    return "\n".join(lines)


def _reconstruction_errors(groups: dict[tuple[float, str], list[dict[str, Any]]]) -> list[str]:
    lines = []
    for (target, variant), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        blocks = [
            r["retraining_free"]["reconstruction"]
            for r in members
            if (r.get("retraining_free") or {}).get("reconstruction")
        ]
        if not blocks:
            continue
        n_layers = len(blocks[0]["layers"])
        per_layer = []
        for i in range(n_layers):

            def mean(key: str, i: int = i, blocks: list = blocks) -> float:
                return statistics.fmean(b["layers"][i][key] for b in blocks)

            per_layer.append(
                f"L{i} attn {mean('attention_error_before'):.3f}→{mean('attention_error_after'):.3f} "
                f"ffn {mean('ffn_error_before'):.3f}→{mean('ffn_error_after'):.3f}"
            )
        lines.append(f"- {variant} @{target:g}: " + "; ".join(per_layer))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path)
    p.add_argument("--reference", default="ppruning-norecon")
    args = p.parse_args(argv)
    print(table(load(args.results), args.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
