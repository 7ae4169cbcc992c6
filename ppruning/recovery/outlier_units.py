"""Outlier neurons: the few FFN neurons that write a decoder's massive activations, found in one pass and kept.

docs/algorithms.md, compensation, outlier neurons. Massive activations (Sun et al., 2024)
are written into the residual stream by a handful of FFN neurons: on SmolLM2-135M one
pass over 64 snippets shows layer 11's neurons 1229 and 1487 peaking at 2,100 and 750
times the layer's median neuron peak, layer 28's neuron 678 at 370 times, and a few more
in layers 1, 2, 9 and 29 above 40 times, while every other neuron of every layer stays
under about 30 times. A method that drops one of them (a random choice at a 20% cut does
with one chance in five per neuron) takes away what the attention sink and the layers
above it are built on, and no refit of the other neurons can carry it.

Found without labels: one pass of the dense model over calibration inputs, a forward
pre-hook on each layer's FFN output projection keeping each neuron's peak |activation|
over real tokens and its mean |activation|. A neuron is an outlier when its peak exceeds
``ratio`` times the median of its layer's peaks. Encoders like MiniLM have none at the
default ratio, so their masks do not change.

Protection keeps each layer's count (so the budget and every cost are unchanged): a
protected neuron the method dropped takes the place of the kept, unprotected neuron of
the same layer with the smallest mean contribution, mean |activation| times the norm of
its column of the output projection (Wanda's score for a neuron; label-free, from the same
pass). The report lists the neurons, their ratios and every swap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.model.heap import release_free_memory
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.blocks import evaluating, model_kwargs
from ppruning.recovery.compensation import at_real, calibration_batches
from ppruning.units.masks import Masks


class OutlierUnitsConfig(BaseModel):
    """Which FFN neurons count as outliers, and how many calibration tokens find them.

    4,096 tokens find the same seven neurons of SmolLM2-135M as 8,192 did, on the decoder
    bench's snippets and on the CLI's 512-token blocks alike, in half the pass's time (7 s instead
    of 14 s in a P-pruning prune of 111 s); 2,048 found one more borderline neuron and 1,024 two.
    """

    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(
        default=40.0,
        gt=1.0,
        le=1e9,
        description="A neuron whose peak |activation| exceeds this many times its layer's median peak is kept.",
    )
    tokens: int = Field(default=4096, ge=16, le=10_000_000, description="Real calibration tokens read.")


@dataclass
class OutlierNeurons:
    """Per layer: the outlier neurons, their peak ratios, and every neuron's mean contribution (for the swap)."""

    neurons: dict[int, list[int]]
    ratios: dict[int, list[float]]
    contribution: list[torch.Tensor]
    tokens: int = 0

    def record(self, ratio: float, swaps: list[dict[str, Any]]) -> dict[str, Any]:
        """The report's ``outlier_units`` block, with the swaps :func:`protect_outliers` made."""
        return {
            "ratio": ratio,
            "tokens": self.tokens,
            "neurons": {str(i): n for i, n in sorted(self.neurons.items())},
            "peak_over_median": {str(i): [round(r, 1) for r in rs] for i, rs in sorted(self.ratios.items())},
            "swaps": swaps,
        }


#: Padded tokens per batch of the outlier pass. Its per-layer reductions (each neuron's peak and
#: sum over a batch's tokens) interleave with the block's own activations; at 2,048 tokens (the
#: compensation's batches) their freed buffers fragmented the heap, and the pass rose resident
#: memory by 200-700 MB on a SmolLM2-shaped decoder, varying from run to run; at 512 by 35-155 MB
#: (about 100 MB in a prune of SmolLM2-135M, ``bench/llm.py --memory-probe``), in about the same time.
BATCH_TOKENS = 512


@torch.no_grad()
def find_outlier_neurons(
    model: nn.Module,
    adapter: ArchAdapter,
    examples: Sequence[Mapping[str, Any]],
    config: OutlierUnitsConfig,
    *,
    pad_token_id: int = 0,
    batch_size: int = 32,
    progress: Progress = NULL_PROGRESS,
) -> OutlierNeurons:
    """One pass of the dense ``model``: neurons whose peak |activation| exceeds ``ratio`` times the layer's median."""
    num_layers = adapter.shape().num_layers
    peak: list[torch.Tensor | None] = [None] * num_layers
    total: list[torch.Tensor | None] = [None] * num_layers
    real: list[torch.Tensor] = []

    def hook(layer: int) -> Any:
        def take(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = at_real(args[0], real[0])
            # reductions without a widened or absolute copy of the batch: such copies, freed per layer,
            # fragmented the heap into a rise of the model's size on SmolLM2-135M
            p = torch.maximum(x.amax(dim=0), -x.amin(dim=0)).to(torch.float64)
            s = torch.linalg.vector_norm(x, ord=1, dim=0, dtype=torch.float64)
            peak[layer] = p if peak[layer] is None else torch.maximum(peak[layer], p)  # type: ignore[arg-type]
            total[layer] = s if total[layer] is None else total[layer] + s

        return take

    tokens = 0
    used, batches = calibration_batches(model, examples, config.tokens, batch_size, pad_token_id, BATCH_TOKENS)
    progress.start_stage("outlier_units", total=len(batches), message=f"{used} examples")
    handles = [adapter.neuron_output_module(i).register_forward_pre_hook(hook(i)) for i in range(num_layers)]
    try:
        with evaluating(model):
            for j, batch in enumerate(batches):
                progress.checkpoint()
                real[:] = [batch["attention_mask"].bool()]
                tokens += int(real[0].sum())
                adapter.backbone(**batch, **model_kwargs(adapter))  # hidden states only: no vocabulary-wide logits
                progress.update(j + 1)
    finally:
        for h in handles:
            h.remove()
        release_free_memory()
    neurons: dict[int, list[int]] = {}
    ratios: dict[int, list[float]] = {}
    contribution = []
    for i in range(num_layers):
        p, s = peak[i], total[i]
        w = adapter.weight_out_in(adapter.neuron_output_module(i)).detach()
        if p is None or s is None:  # no real token reached the layer
            p = s = torch.zeros(w.shape[1], dtype=torch.float64)
        norms = torch.linalg.vector_norm(w, dim=0, dtype=torch.float64)  # no float64 copy of the weight
        contribution.append((s / max(tokens, 1)).cpu() * norms.cpu())
        rel = (p / p.median().clamp(min=1e-30)).cpu()
        hits = torch.nonzero(rel > config.ratio).flatten().tolist()
        if hits:
            neurons[i] = [int(n) for n in hits]
            ratios[i] = [float(rel[n]) for n in hits]
    return OutlierNeurons(neurons, ratios, contribution, tokens)


def protect_outliers(masks: Masks, found: OutlierNeurons) -> tuple[Masks, list[dict[str, Any]]]:
    """``masks`` with every outlier neuron kept, each layer's count unchanged, and the swaps that took.

    ``found`` is not changed, so one pass serves the masks of every target and method.
    """
    neuron = masks.neuron_mask.clone()
    swaps: list[dict[str, Any]] = []
    for layer, outliers in sorted(found.neurons.items()):
        row = neuron[layer]
        protected = torch.zeros(row.shape[0], dtype=torch.bool)
        protected[outliers] = True
        for n in outliers:
            if row[n] > 0.5:
                continue
            candidates = torch.nonzero((row > 0.5) & ~protected).flatten()
            if len(candidates) == 0:  # every kept neuron is protected: the layer keeps one more
                row[n] = 1.0
                swaps.append({"layer": layer, "kept": n, "dropped": None})
                continue
            out = int(candidates[torch.argmin(found.contribution[layer][candidates])])
            row[n], row[out] = 1.0, 0.0
            swaps.append({"layer": layer, "kept": n, "dropped": out})
    return dataclasses.replace(masks, neuron_mask=neuron), swaps
