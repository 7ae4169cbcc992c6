"""Decoder benchmark of the library's least-squares compensation: SmolLM2-135M, plain masks against refitted ones.

Every row cuts the model with a method's masks (``bench/llm.py``'s methods, at a fraction
of the FFN's parameters) and measures perplexity on the same held-out text as
``bench/llm.py``, with no fine-tuning: ``plain`` cuts the masks as they are; every other
variant first runs :func:`ppruning.recovery.compensation.compensate` (the code
``prune()`` runs) with the library's defaults changed as the variant says: the target
(``dense``), the calibration tokens, the ridge, the outlier handling, one pass instead
of layer by layer, and ``protect``/``protect-comp``: the outlier neurons kept whatever the
method chose, each swapped for the layer's kept neuron of least contribution
(:mod:`ppruning.recovery.outlier_units`), then plain or compensated: ``protect-comp`` is what
``prune()`` does by default. ``comp-distill``/``protect-comp-distill`` add a short distillation
from the dense model (``--distill-steps``).

Each row is one JSON file under ``--out`` (``<method>-<ffn fraction>-<variant>.json``); a
rerun skips rows whose file exists, so it resumes. Masks are cached as ``bench/llm.py``
caches them (``--masks``). ``--table`` prints the table from the files alone.

Run: ``PYTHONPATH=. python bench/llm_compensation.py --methods ppruning random prunenet
--targets 0.2 --variants plain comp dense-target`` (see the README's decoder section).
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llm import (  # noqa: E402 - bench scripts run as files
    METHODS,
    REPO,
    RssPeak,
    calibration_examples,
    context,
    masks_for,
    perplexity,
    text_blocks,
)

from ppruning.arch import get_adapter  # noqa: E402
from ppruning.methods.baselines.shortgpt import ShortGPTParams, shortgpt_layers  # noqa: E402
from ppruning.methods.ppruning.method import cluster_layers  # noqa: E402
from ppruning.methods.ppruning.params import PPruningParams  # noqa: E402
from ppruning.model.layer_surgery import drop_layers  # noqa: E402
from ppruning.model.surgery import prune_model  # noqa: E402
from ppruning.recovery.compensation import CompensationConfig, compensate  # noqa: E402
from ppruning.recovery.distill import DistillConfig, causal_lm_positions, distillation_loss  # noqa: E402
from ppruning.recovery.layer_compensation import compensate_layer_drop  # noqa: E402
from ppruning.recovery.outlier_units import OutlierUnitsConfig, find_outlier_neurons, protect_outliers  # noqa: E402
from ppruning.units.budget import Target, make_budget  # noqa: E402
from ppruning.units.cost import attention_total, ffn_total, unit_costs  # noqa: E402
from ppruning.units.masks import Masks, load_masks, save_masks  # noqa: E402
from tests.support.smollm2 import save_smollm2  # noqa: E402

#: variant -> the compensation config's changes from the library's defaults (None: plain masks).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "comp": {},
    "dense-target": {"target": "dense"},
    "current-target": {"target": "current"},
    "outliers-keep": {"outliers": "keep"},
    "outliers-exclude": {"outliers": "exclude"},
    "one-pass": {"sequential": False},
    "tokens-2k": {"tokens": 2048},
    "tokens-4k": {"tokens": 4096},
    "tokens-16k": {"tokens": 16384},
    "alpha-1e-3": {"alpha": 1e-3},
    "alpha-1e-1": {"alpha": 1e-1},
    "ffn-only": {"parts": ["ffn"]},
    "protect": None,
    "protect-comp": {},
    "comp-distill": {},
    "protect-comp-distill": {},
}
#: Variants whose masks first keep the outlier neurons (:mod:`ppruning.recovery.outlier_units`).
PROTECTED = ("protect", "protect-comp", "protect-comp-distill")
#: Variants distilled from the dense model after the cut (``--distill-steps``; :func:`distill`).
DISTILLED = ("comp-distill", "protect-comp-distill")


def distill(student: torch.nn.Module, teacher: torch.nn.Module, blocks: torch.Tensor, args: argparse.Namespace) -> None:
    """A short distillation from the dense model, the same for every pruned model: the library's loss
    (``(1 - alpha)`` LM loss + ``alpha`` T^2 KL over the vocabulary, :class:`DistillConfig`'s defaults), AdamW at a
    constant learning rate, ``--distill-steps`` steps of ``--distill-batch`` blocks of ``--distill-block`` tokens."""
    config = DistillConfig(teacher={"id": "dense"})
    student.train()
    optim = torch.optim.AdamW(student.parameters(), lr=args.distill_lr)
    g = torch.Generator().manual_seed(args.seed)
    for _ in range(args.distill_steps):
        ids = blocks[torch.randint(len(blocks), (args.distill_batch,), generator=g)]
        out = student(input_ids=ids, labels=ids)
        with torch.no_grad():
            teacher_logits = teacher(input_ids=ids).logits
        positions = causal_lm_positions(ids, None)
        loss = distillation_loss(out.loss, out.logits, teacher_logits, config, positions=positions)
        loss.backward()
        optim.step()
        optim.zero_grad()
    student.eval()


def row_name(method: str, fraction: float, variant: str, seed: int = 0) -> str:
    """``<method>-<fraction>-<variant>``, and ``-s<seed>`` after it for a seed other than 0."""
    return f"{method}-{fraction:g}-{variant}" + (f"-s{seed}" if seed else "")


def get_masks(
    args: argparse.Namespace, method: str, fraction: float, ctx: Any, state: dict[str, Any]
) -> Masks | list[int]:
    """The method's masks at ``fraction`` of the FFN's parameters (ShortGPT: the layers it removes), cached."""
    folder = args.masks / (f"{method}-{fraction:g}" + (f"-s{args.seed}" if args.seed else ""))
    if (folder / "masks.safetensors").is_file():
        return load_masks(folder)
    if (folder / "layers.json").is_file():
        return json.loads((folder / "layers.json").read_text())
    costs = unit_costs(ctx.shape, "params", args.max_length)
    ffn_share = ffn_total(ctx.shape, costs) / (ffn_total(ctx.shape, costs) + attention_total(ctx.shape, costs))
    if method == "shortgpt":  # the smallest count of layers whose share meets the same parameter target
        ctx.target = Target(params_reduction=fraction * ffn_share)
        ctx.params, ctx.details = ShortGPTParams(), {}
        layers = list(shortgpt_layers(ctx).removed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "layers.json").write_text(json.dumps(layers))
        return layers
    if method.startswith("ppruning") and "clusters" not in state:
        ctx.budget = make_budget(Target(params_reduction=0.1), ctx.shape, args.max_length, 5.0)
        state["clusters"] = cluster_layers(ctx, PPruningParams())
    scope = "ffn" if "-ffn" in method or method == "prunenet" else "attention+ffn"
    ctx.budget = make_budget(Target(params_reduction=fraction * ffn_share), ctx.shape, args.max_length, 5.0, scope)
    ctx.details = {}
    masks = masks_for(method, ctx, state.get("clusters"), args)
    save_masks(masks, folder)
    return masks


def run(args: argparse.Namespace) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = save_smollm2(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    test = text_blocks(tokenizer, args.text / "test.txt", args.block, args.eval_blocks)
    examples = calibration_examples(tokenizer, args.text / "train.txt", args.max_instances, args.max_length)
    args.out.mkdir(parents=True, exist_ok=True)
    dense_file = args.out / f"dense-eval{args.eval_blocks}.json"
    if not dense_file.is_file():
        dense_file.write_text(json.dumps({"method": "dense", "ppl": perplexity(model, test), "tokens": test.numel()}))
    reference = args.out / f"dense-distill-eval{args.eval_blocks}.json"
    if args.dense_distill and not reference.is_file():  # the same short distillation applied to the dense model
        student = copy.deepcopy(model)
        train = text_blocks(tokenizer, args.text / "train.txt", args.distill_block, 10_000)
        start = time.perf_counter()
        distill(student, model, train, args)
        row = {"method": "dense", "variant": "distill", "distill_steps": args.distill_steps}
        row.update(ppl=perplexity(student, test), tokens=test.numel(), distill_s=time.perf_counter() - start)
        reference.write_text(json.dumps(row))
        del student
    ctx = context(model, tokenizer, examples, args)
    state: dict[str, Any] = {}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for fraction in args.targets:
        for method in args.methods:
            for variant in args.variants:
                out = args.out / f"{row_name(method, fraction, variant, args.seed)}.json"
                if out.is_file():
                    continue
                masks = get_masks(args, method, fraction, ctx, state)
                found = None
                if variant in PROTECTED and isinstance(masks, Masks):
                    if "outliers" not in state:
                        state["outliers"] = find_outlier_neurons(
                            model, get_adapter(model), examples, OutlierUnitsConfig(), pad_token_id=pad
                        )
                    found = state["outliers"]
                    masks, swaps = protect_outliers(masks, found)
                pruned = copy.deepcopy(model)
                adapter = get_adapter(pruned)
                row: dict[str, Any] = {"method": method, "ffn_fraction": fraction, "variant": variant}
                row["seed"] = args.seed
                if isinstance(masks, list):
                    row["layers_removed"] = masks
                if found is not None:
                    row["outlier_units"] = found.record(OutlierUnitsConfig().ratio, swaps)
                changes = VARIANTS[variant]
                if changes is not None:
                    config = CompensationConfig(**changes)
                    fit: Any = compensate_layer_drop if isinstance(masks, list) else compensate
                    start = time.perf_counter()
                    with RssPeak() as mem:
                        comp = fit(pruned, adapter, masks, examples, config, pad_token_id=pad)
                    row.update(
                        config=config.model_dump(mode="json"),
                        compensation_s=time.perf_counter() - start,
                        compensation_rss_rise_mb=mem.rise_mb,
                        tokens=comp.tokens,
                        outlier_tokens=comp.outlier_tokens,
                    )
                if isinstance(masks, list):
                    drop_layers(pruned, masks, adapter)
                else:
                    prune_model(pruned, masks, adapter)
                if variant in DISTILLED:
                    if "train" not in state:
                        state["train"] = text_blocks(tokenizer, args.text / "train.txt", args.distill_block, 10_000)
                    start = time.perf_counter()
                    distill(pruned, model, state["train"], args)
                    row.update(
                        distill_s=time.perf_counter() - start,
                        distill_steps=args.distill_steps,
                        distill_tokens=args.distill_steps * args.distill_batch * args.distill_block,
                    )
                row["ppl"] = perplexity(pruned, test)
                row["eval_tokens"] = test.numel()
                row["params"] = sum(p.numel() for p in pruned.parameters())
                out.write_text(json.dumps(row))
                print(f"{out.stem}: ppl {row['ppl']:.1f} {row.get('compensation_s', 0):.0f} s", flush=True)
                del pruned


def table(out: Path, eval_blocks: int) -> str:
    dense = json.loads((out / f"dense-eval{eval_blocks}.json").read_text())
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if not p.name.startswith("dense")]
    lines = [f"dense perplexity {dense['ppl']:.1f} on {dense['tokens']} held-out tokens"]
    reference = out / f"dense-distill-eval{eval_blocks}.json"
    if reference.is_file():
        r = json.loads(reference.read_text())
        lines.append(
            f"dense after the same distillation ({r['distill_steps']} steps, its own teacher): {r['ppl']:.1f}, "
            f"the reference for the distilled rows"
        )
    lines += [
        "",
        "| FFN cut | method | variant | seed | ppl | x dense | compensation s | RSS rise MB | tokens | distill s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(VARIANTS)
    rows.sort(key=lambda r: (r["ffn_fraction"], r["method"], order.index(r["variant"]), r.get("seed", 0)))
    for r in rows:
        comp_s = f"{r['compensation_s']:.0f}" if "compensation_s" in r else "-"
        rise = f"{r['compensation_rss_rise_mb']:.0f}" if "compensation_rss_rise_mb" in r else "-"
        distill_s = f"{r['distill_s']:.0f}" if "distill_s" in r else "-"
        lines.append(
            f"| {r['ffn_fraction']:.0%} | {r['method']} | {r['variant']} | {r.get('seed', 0)} | {r['ppl']:,.1f} | "
            f"{r['ppl'] / dense['ppl']:.2f} | {comp_s} | {rise} | {r.get('tokens', '-')} | {distill_s} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / ".bench" / "smollm2-135m-fp32")
    p.add_argument("--text", type=Path, default=REPO / ".bench" / "llm-text")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results_llm" / "compensation")
    p.add_argument("--masks", type=Path, default=REPO / ".bench" / "llm-masks")
    p.add_argument("--targets", type=float, nargs="+", default=[0.2], help="fractions of FFN parameters")
    p.add_argument("--methods", nargs="+", default=["ppruning", "random", "prunenet"], choices=METHODS)
    p.add_argument("--variants", nargs="+", default=["plain", "comp"], choices=list(VARIANTS))
    p.add_argument("--episodes", type=int, default=20, help="PruneNet's policy episodes")
    p.add_argument("--sampling-tokens", type=int, default=200)
    p.add_argument("--max-instances", type=int, default=1000, help="calibration snippets (pruning and refit)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--eval-blocks", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distill-steps", type=int, default=20, help="comp-distill: steps of distillation")
    p.add_argument("--distill-batch", type=int, default=2, help="comp-distill: blocks per step")
    p.add_argument("--distill-block", type=int, default=128, help="comp-distill: tokens per block")
    p.add_argument("--distill-lr", type=float, default=1e-4)
    p.add_argument(
        "--dense-distill",
        action="store_true",
        help="also the dense model after the same distillation (its own teacher): the reference for the distilled "
        "rows, since the steps also adapt the model to the calibration text's domain",
    )
    p.add_argument("--table", action="store_true", help="print the table from the result files only")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    if not args.table:
        start = time.perf_counter()
        run(args)
        command = "PYTHONPATH=. python bench/llm_compensation.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        print(f"\n{command}\nwall time {time.perf_counter() - start:.0f} s, torch threads {torch.get_num_threads()}")
    print(table(args.out, args.eval_blocks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
