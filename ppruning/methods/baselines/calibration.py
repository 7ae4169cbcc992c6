"""Calibration statistics the activation-aware baselines share: per-channel moments of the unit outputs.

docs/algorithms.md, decoder baselines. FLAP and Wanda-sp both score a unit from the
input channels of the layer's output projections (the head outputs feeding the
attention output projection, the neuron outputs feeding the FFN down projection): FLAP
from each channel's mean and variance over calibration tokens, Wanda-sp from its L2 norm.
One pass of the dense model over the task inputs the method read gives all of them:
forward pre-hooks on every layer's two output projections add the real (non-pad) tokens'
count, sum and centred sum of squares per channel (merged batch by batch with Chan's
parallel update, in float64, so a large mean does not swamp the variance).

Some families flatten the hidden states before the FFN (OPT runs ``fc1``/``fc2`` on
[batch * tokens, width]); the hook folds such an input back with the batch's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.errors import DataError
from ppruning.methods.contract import MethodContext
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.blocks import evaluating
from ppruning.tasks.collate import INPUT_COLUMNS, pad_batch
from ppruning.units.budget import allocate, ranked_heights
from ppruning.units.masks import Masks
from ppruning.units.select import keep_mask, top_k


@dataclass
class ChannelMoments:
    """Count, mean and centred sum of squares of each input channel of one projection, over real tokens."""

    count: int
    mean: torch.Tensor  # [channels] float64
    m2: torch.Tensor  # [channels] float64: sum over tokens of (x - mean)^2

    @classmethod
    def empty(cls, channels: int, device: torch.device) -> ChannelMoments:
        zeros = torch.zeros(channels, dtype=torch.float64, device=device)
        return cls(0, zeros, zeros.clone())

    def add(self, x: torch.Tensor) -> None:
        """Merge the rows of ``x`` [tokens, channels] (Chan et al.'s pairwise update)."""
        n = int(x.shape[0])
        if n == 0:
            return
        x = x.to(torch.float64)
        mean_b = x.mean(dim=0)
        m2_b = ((x - mean_b) ** 2).sum(dim=0)
        total = self.count + n
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def variance(self) -> torch.Tensor:
        """The sample variance (divided by N - 1, as FLAP's paper writes it)."""
        return self.m2 / max(1, self.count - 1)

    @property
    def sq_norm(self) -> torch.Tensor:
        """Sum over tokens of x^2: the squared L2 norm of each channel's column of activations."""
        return self.m2 + self.count * self.mean**2


@dataclass
class LayerMoments:
    """Per layer, the moments of the head outputs and of the neuron outputs."""

    heads: list[ChannelMoments]
    neurons: list[ChannelMoments]
    examples_run: int

    @property
    def tokens(self) -> int:
        return self.heads[0].count if self.heads else 0


def dense_pass(
    model: nn.Module,
    adapter: ArchAdapter,
    examples: Sequence[Mapping[str, Any]],
    handles: list[Any],
    set_mask: Callable[[torch.Tensor], None],
    *,
    batch_size: int,
    pad_token_id: int,
    progress: Progress,
    stage: str = "collect",
) -> int:
    """One inference pass of the backbone over ``examples`` for the hooks in ``handles``; the real tokens seen.

    Examples run in length-sorted batches (little padding per batch); each batch's real-token
    mask goes to ``set_mask`` before its forward, so the hooks keep real tokens only. The
    hooks are removed and the model's training mode restored whatever happens.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda e: len(examples[e]["input_ids"]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    progress.start_stage(stage, total=len(batches), message=f"{len(examples)} examples")
    tokens = 0
    try:
        with evaluating(model), torch.inference_mode():
            for step, ids in enumerate(batches, start=1):
                progress.checkpoint()
                batch = pad_batch([examples[e] for e in ids], pad_token_id, columns=INPUT_COLUMNS, device=device)
                mask = batch["attention_mask"].bool()
                set_mask(mask)
                tokens += int(mask.sum())
                adapter.backbone(**batch)  # hidden states only: a task head (an LM head's logits) is not needed
                progress.update(step, total=len(batches))
    finally:
        for h in handles:
            h.remove()
    return tokens


def output_moments(
    model: nn.Module,
    adapter: ArchAdapter,
    examples: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 32,
    pad_token_id: int = 0,
    progress: Progress = NULL_PROGRESS,
    stage: str = "collect",
) -> LayerMoments:
    """One pass of the (dense) model over ``examples``; the moments of every layer's unit outputs."""
    if not examples:
        raise DataError("the method reads calibration inputs, and the task gave none", field="task")
    device = next(model.parameters()).device
    shape = adapter.shape()
    heads = [ChannelMoments.empty(la.num_head_units * la.head_unit_width, device) for la in shape.layers]
    neurons = [ChannelMoments.empty(la.ffn_size, device) for la in shape.layers]
    current: dict[str, torch.Tensor] = {}

    def capture(store: ChannelMoments) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            if x.dim() == 2:  # flattened [batch * tokens, width] (OPT's FFN)
                x = x.view(*current["mask"].shape, x.shape[-1])
            store.add(x[current["mask"]])

        return hook

    handles = []
    for i in range(shape.num_layers):
        handles.append(adapter.head_output_module(i).register_forward_pre_hook(capture(heads[i])))
        handles.append(adapter.neuron_output_module(i).register_forward_pre_hook(capture(neurons[i])))
    dense_pass(model, adapter, examples, handles, lambda mask: current.__setitem__("mask", mask),
               batch_size=batch_size, pad_token_id=pad_token_id, progress=progress, stage=stage)  # fmt: skip
    if heads[0].count == 0:
        raise DataError("the calibration inputs hold no real tokens", field="task")
    return LayerMoments(heads, neurons, examples_run=len(examples))


def run_calibration(ctx: MethodContext, method: str) -> LayerMoments:
    """The dense pass both Wanda-sp and FLAP score from, run on the method's sampled inputs and noted in the report."""
    assert ctx.examples is not None, f"{method} reads task inputs (its declaration says so)"
    moments = output_moments(
        ctx.model,
        ctx.adapter,
        ctx.examples,
        batch_size=ctx.sampling.batch_size,
        pad_token_id=ctx.pad_token_id,
        progress=ctx.progress,
    )
    ctx.details["calibration"] = {"examples": moments.examples_run, "tokens": moments.tokens}
    return moments


# --------------------------------------------------------------------------- masks from per-unit scores


def removal_per_type(
    ctx: MethodContext, head_scores: list[np.ndarray], neuron_scores: list[np.ndarray]
) -> tuple[Sequence[int], Sequence[int]]:
    """Units removed per layer by one ranking per unit type across layers (the budget's split between types)."""
    b = ctx.budget
    heads = allocate(ranked_heights(head_scores), b.costs.head, b.head_removal).removed
    neurons = allocate(ranked_heights(neuron_scores), b.costs.neuron, b.neuron_removal).removed
    return heads, neurons


def keep_highest(
    ctx: MethodContext,
    head_scores: list[np.ndarray],
    neuron_scores: list[np.ndarray],
    removed_heads: Sequence[int],
    removed_neurons: Sequence[int],
) -> Masks:
    """Masks keeping each layer's highest-scoring units once its removed counts are taken off."""
    head_rows, neuron_rows = [], []
    for i, la in enumerate(ctx.shape.layers):
        head_rows.append(keep_mask(la.num_head_units, top_k(head_scores[i], la.num_head_units - int(removed_heads[i]))))
        neuron_rows.append(keep_mask(la.ffn_size, top_k(neuron_scores[i], la.ffn_size - int(removed_neurons[i]))))
        ctx.progress.update(i + 1)
    return Masks(torch.stack(head_rows), torch.stack(neuron_rows))
