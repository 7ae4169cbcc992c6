"""P-pruning speed and memory at BERT-base and GPT-2-small shapes, and pruned-model latency.

Random weights time the same as trained ones, so models are built from their configs (no
hub). Inputs are ``--instances`` random token sequences of ``--length`` real tokens. For
each shape the script times the library's stages (collect, cluster, select, materialise)
through the same method code ``prune()`` runs, records peak host RSS and device memory,
then prunes at each ``--reductions`` FLOPs target and compares the pruned model's
inference latency (batch ``--latency-batch`` x ``--latency-length``) with the full one's,
next to the ideal FLOPs ratio. Prints two tables and the command line.

    python bench/prune_speed.py                       # the issue's figures (GPU machine)
    python bench/prune_speed.py --instances 300 --threads 2 --latency-batch 8   # a small CPU run
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppruning.arch import get_adapter  # noqa: E402
from ppruning.measure.speed import device_pair_timer, random_inputs  # noqa: E402
from ppruning.methods import MethodContext  # noqa: E402
from ppruning.methods.ppruning.cluster import cut  # noqa: E402
from ppruning.methods.ppruning.method import cluster_layers, removed_per_layer  # noqa: E402
from ppruning.methods.ppruning.select import centroids  # noqa: E402
from ppruning.model.loading import resolve_device  # noqa: E402
from ppruning.model.surgery import prune_model  # noqa: E402
from ppruning.progress import Progress  # noqa: E402
from ppruning.run.config import PruneConfig  # noqa: E402
from ppruning.run.report import StageTimer, peak_device_bytes, peak_host_rss_bytes, reset_peak_memory  # noqa: E402
from ppruning.tasks import get_task  # noqa: E402
from ppruning.units.budget import Target, make_budget  # noqa: E402
from ppruning.units.cost import model_costs  # noqa: E402
from ppruning.units.masks import Masks  # noqa: E402
from ppruning.units.select import keep_mask


def build(shape: str) -> torch.nn.Module:
    from transformers import AutoModel, BertConfig, GPT2Config

    config = BertConfig() if shape == "bert-base" else GPT2Config()
    torch.manual_seed(0)
    return AutoModel.from_config(config).eval()


def examples(n: int, length: int, vocab: int, seed: int = 0) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    return [{"input_ids": row.tolist(), "attention_mask": [1] * length} for row in ids]


def masks_for(ctx: MethodContext, clusters: Any) -> Masks:
    heads, neurons = removed_per_layer(ctx, clusters, "global")
    hm, nm = [], []
    for i, la in enumerate(ctx.shape.layers):
        hm.append(
            keep_mask(
                la.num_head_units, centroids(cut(clusters.heads[i], int(heads[i])), clusters.head_magnitude[i])
            )
        )
        nm.append(
            keep_mask(
                la.ffn_size, centroids(cut(clusters.neurons[i], int(neurons[i])), clusters.neuron_magnitude[i])
            )
        )
    return Masks(torch.stack(hm), torch.stack(nm))


def paired_latency(
    full: torch.nn.Module, pruned: torch.nn.Module, batch: int, length: int, repeats: int, device: torch.device
) -> tuple[float, float]:
    """Median latency of each model: the library's measurement (ppruning.measure.speed), runs interleaved."""
    inputs = random_inputs(full, batch, length, device)
    run_pair = device_pair_timer(device)
    run_pair(full, pruned, inputs)  # warm-up
    pairs = [run_pair(full, pruned, inputs) for _ in range(repeats)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def run_shape(shape: str, args: argparse.Namespace, device: torch.device) -> tuple[dict, list[dict]]:
    reset_peak_memory(device)
    rss_start = peak_host_rss_bytes()
    model = build(shape).to(device)
    adapter = get_adapter(model)
    model_shape = adapter.shape()
    data = examples(args.instances, args.length, model.config.vocab_size)
    config = PruneConfig(
        model={"id": shape},
        task={"name": "sst2"},
        target={"flops_reduction": args.reductions[0]},
        sampling={
            "max_instances": args.instances,
            "sampling_tokens": args.sampling_tokens,
            "batch_size": args.batch_size,
        },
    )
    from ppruning.methods.ppruning.params import PPruningParams

    params = PPruningParams.model_validate(config.params)
    timer = StageTimer(Progress())
    budget = make_budget(config.target, model_shape, args.length, params.lambda_val)
    ctx = MethodContext(
        params=params,
        sampling=config.sampling,
        seed=config.seed,
        task=get_task("sst2"),
        task_ref=config.task,
        model=model,
        tokenizer=None,
        adapter=adapter,
        shape=model_shape,
        budget=budget,
        progress=timer,
        examples=data,
        pad_token_id=0,
    )
    t0 = time.perf_counter()
    clusters = cluster_layers(ctx, params)  # stages collect + cluster
    timer.start_stage("select")
    masks = masks_for(ctx, clusters)
    mask_seconds = time.perf_counter() - t0
    timer.start_stage("materialise")
    prune_model(copy.deepcopy(model), masks)
    seconds = timer.finish()
    stage_row = {
        "shape": shape,
        **seconds,
        "masks_total": mask_seconds,
        "examples_run": ctx.details["collection"]["examples_run"],
        "peak_rss_gb": peak_host_rss_bytes() / 2**30,
        "rss_at_start_gb": rss_start / 2**30,
        "peak_device_gb": (peak_device_bytes(device) or 0) / 2**30,
    }

    rows = []
    before = model_costs(model, model_shape, args.latency_length)
    for target in args.reductions:
        ctx.budget = make_budget(Target(flops_reduction=target), model_shape, args.length, params.lambda_val)
        pruned = prune_model(copy.deepcopy(model), masks_for(ctx, clusters))
        after = model_costs(pruned, get_adapter(pruned).shape(), args.latency_length)
        full_ms, pruned_ms = paired_latency(
            model, pruned, args.latency_batch, args.latency_length, args.repeats, device
        )
        ideal = after["flops"]["total"] / before["flops"]["total"]
        measured = pruned_ms / full_ms
        rows.append(
            {
                "shape": shape,
                "target": target,
                "achieved_part": 1 - after["flops"]["pruned_part"] / before["flops"]["pruned_part"],
                "full_ms": full_ms,
                "pruned_ms": pruned_ms,
                "ideal_ratio": ideal,
                "measured_ratio": measured,
                "gap": measured / ideal - 1,
            }
        )
        del pruned
    return stage_row, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default="bert-base,gpt2-small")
    p.add_argument("--instances", type=int, default=3000)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--sampling-tokens", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32, help="collection batch size")
    p.add_argument("--reductions", type=lambda s: [float(x) for x in s.split(",")], default=[0.3, 0.5])
    p.add_argument("--latency-batch", type=int, default=32)
    p.add_argument("--latency-length", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    stage_rows, latency_rows = [], []
    for shape in args.shapes.split(","):
        stages, lat = run_shape(shape, args, device)
        stage_rows.append(stages)
        latency_rows.extend(lat)

    print(f"# device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"# instances={args.instances} length={args.length} sampling_tokens={args.sampling_tokens}")
    print(
        "| shape | collect s | cluster s | select s | materialise s | masks total s | examples run "
        "| peak RSS GB (start) | peak device GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in stage_rows:
        print(
            f"| {r['shape']} | {r.get('collect', 0):.1f} | {r.get('cluster', 0):.1f} | {r.get('select', 0):.2f} "
            f"| {r.get('materialise', 0):.2f} | {r['masks_total']:.1f} | {r['examples_run']} "
            f"| {r['peak_rss_gb']:.2f} ({r['rss_at_start_gb']:.2f}) | {r['peak_device_gb']:.2f} |"
        )
    print()
    print(
        f"# latency: batch {args.latency_batch} x length {args.latency_length}, median of {args.repeats}, interleaved"
    )
    print("| shape | target | achieved (attn+FFN) | full ms | pruned ms | ideal FLOPs ratio | measured ratio | gap |")
    print("|---|---|---|---|---|---|---|---|")
    for r in latency_rows:
        print(
            f"| {r['shape']} | {r['target']:.0%} | {r['achieved_part']:.1%} | {r['full_ms']:.0f} "
            f"| {r['pruned_ms']:.0f} | {r['ideal_ratio']:.3f} | {r['measured_ratio']:.3f} | {r['gap']:+.1%} |"
        )
    print()
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
