"""Streaming collection of head and neuron outputs at a seeded sample of real token positions.

docs/algorithms.md, P-pruning, step 2, done the cheap way: the ``sampling_tokens`` positions are drawn
*before any forward pass*, uniformly over the pooled real (non-pad) tokens of the
tokenised examples (the reference's distribution, read from the lengths alone). Only the
examples that hold a sampled position are run, in batches with dynamic padding, and
forward pre-hooks on the attention and FFN output projections copy just the sampled rows
into preallocated [S, width] buffers. Memory is O(layers * S * width), whatever the
number of examples; compute is at most S forward passes instead of ``max_instances``.

A real token's activations do not depend on the padding after it (attention masks pads
out; causal models never look ahead), so batching by length changes nothing. On a decoder
they do not depend on any later token either, so each example is run only up to its last
sampled position (``run_lengths``): with positions drawn uniformly, about half the tokens
of a long example are never computed. Batches are sorted by that length, and a row shorter
than its batch's longest is run on with its own later tokens rather than padded, so a batch of
long examples (LM blocks) has no padding at all and the attention needs no mask.

Some families flatten the hidden states before the FFN (OPT runs ``fc1``/``fc2`` on
[batch * tokens, width]); the hooks fold such an input back to [batch, tokens, width]
with the padded batch's shape before indexing, so every family is read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.errors import DataError
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.blocks import evaluating, model_kwargs
from ppruning.tasks.collate import INPUT_COLUMNS, pad_batch


@dataclass(frozen=True)
class TokenSample:
    """Sampled positions: ``example[k]``, ``token[k]`` (index into that example's input_ids)."""

    example: np.ndarray
    token: np.ndarray
    pooled_real_tokens: int

    def __len__(self) -> int:
        return len(self.example)


@dataclass
class Activations:
    """Per layer, the sampled rows of head outputs [S, units*width] and neuron outputs [S, ffn]."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]
    sample: TokenSample
    examples_run: int
    batches_run: int


def _real_positions(example: Mapping[str, Any]) -> np.ndarray:
    mask = example.get("attention_mask")
    n = len(example["input_ids"])
    if mask is None:
        return np.arange(n)
    return np.flatnonzero(np.asarray(mask, dtype=np.int64)[:n])


def sample_positions(
    examples: Sequence[Mapping[str, Any]], num_tokens: int, seed: int, skip_first: int = 0
) -> TokenSample:
    """Draw ``num_tokens`` distinct real positions uniformly from all examples' real tokens, seeded.

    Reads only the attention masks (or lengths); when there are fewer real tokens than
    ``num_tokens`` every one of them is taken. ``skip_first`` leaves out each example's
    first real tokens (a decoder's attention-sink position: ``ClusteringParams.first_token``).
    """
    real = [_real_positions(ex)[skip_first:] for ex in examples]
    lengths = np.asarray([len(r) for r in real], dtype=np.int64)
    pooled = int(lengths.sum())
    if pooled == 0:
        raise DataError("the task's examples hold no real tokens to sample", field="task")
    take = min(num_tokens, pooled)
    rng = np.random.default_rng(seed)
    flat = np.sort(rng.choice(pooled, size=take, replace=False))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    example = np.searchsorted(offsets, flat, side="right") - 1
    within = flat - offsets[example]
    token = np.asarray([real[e][w] for e, w in zip(example, within, strict=True)], dtype=np.int64)
    return TokenSample(example.astype(np.int64), token, pooled)


def run_lengths(examples: Sequence[Mapping[str, Any]], sample: TokenSample, causal: bool) -> dict[int, int]:
    """Tokens each holding example is run for: up to its last sampled position on a decoder, else all of it.

    A causal model's output at a token reads only that token and earlier ones, so the rest of
    the example cannot change a sampled row; a bidirectional encoder's can, so it runs whole.
    """
    if not causal:
        return {int(e): len(examples[int(e)]["input_ids"]) for e in np.unique(sample.example)}
    last: dict[int, int] = {}
    for e, t in zip(sample.example.tolist(), sample.token.tolist(), strict=True):
        last[e] = max(last.get(e, 0), t + 1)
    return last


def _truncated(example: Mapping[str, Any], length: int) -> dict[str, Any]:
    """The example's input columns cut to their first ``length`` tokens."""
    return {k: example[k][:length] for k in INPUT_COLUMNS if k in example and example[k] is not None}


#: Share of a batch's needed tokens its shorter rows may run past their last sampled position.
EXTRA_TOKENS = 1 / 16


def length_batches(holders: np.ndarray, lengths: Mapping[int, int], batch_size: int) -> list[np.ndarray]:
    """``holders`` sorted by run length, cut into batches of at most ``batch_size``.

    Every row of a batch runs to the batch's longest length, so a batch also ends where
    taking the next (longer) row would compute more than :data:`EXTRA_TOKENS` beyond what
    its rows need: with positions spread over long examples, fixed-size batches of sorted
    rows compute a sixth more tokens than needed, these a few percent (short rows then run
    in small batches, which costs a CPU nothing and a GPU little, those rows being short).
    """
    batches: list[list[int]] = []
    need = 0
    for e in holders.tolist():
        length = lengths[e]
        if (
            batches
            and len(batches[-1]) < batch_size
            and (len(batches[-1]) + 1) * length <= (need + length) * (1 + EXTRA_TOKENS)
        ):
            batches[-1].append(e)
            need += length
        else:
            batches.append([e])
            need = length
    return [np.asarray(b, dtype=holders.dtype) for b in batches]


class _StopForward(Exception):  # noqa: N818 - control flow, not an error
    """Raised by the last layer's hook: nothing after it is needed."""


def collect(
    model: nn.Module,
    adapter: ArchAdapter,
    examples: Sequence[Mapping[str, Any]],
    *,
    sampling_tokens: int,
    seed: int,
    batch_size: int = 32,
    pad_token_id: int | None = None,
    progress: Progress = NULL_PROGRESS,
    skip_first: int = 0,
) -> Activations:
    """Run the examples holding sampled positions and keep only those positions' unit outputs.

    ``examples`` are tokenised rows (a ``datasets.Dataset`` or a list of dicts) with
    ``input_ids`` and optionally ``attention_mask`` / ``token_type_ids``; they are read
    unpadded or padded alike. Activations stay on the model's device, in float32.
    """
    sample = sample_positions(examples, sampling_tokens, seed, skip_first)
    device = next(model.parameters()).device
    shape = adapter.shape()
    s = len(sample)
    heads = [torch.empty(s, la.num_head_units * la.head_unit_width, device=device) for la in shape.layers]
    neurons = [torch.empty(s, la.ffn_size, device=device) for la in shape.layers]

    lengths = run_lengths(examples, sample, adapter.is_decoder)
    holders = np.unique(sample.example)
    holders = holders[np.argsort([lengths[int(e)] for e in holders], kind="stable")]
    current: dict[str, torch.Tensor] = {}  # rows in batch, token indices, sample slots

    def capture(store: list[torch.Tensor], layer: int, stop: bool) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            if x.dim() == 2:  # flattened [batch * tokens, width] (OPT's FFN)
                x = x.view(*current["ids"].shape, x.shape[-1])
            store[layer][current["slot"]] = x[current["row"], current["tok"]].to(torch.float32)
            if stop:
                raise _StopForward

        return hook

    last = shape.num_layers - 1
    handles = []
    for i in range(shape.num_layers):
        handles.append(adapter.head_output_module(i).register_forward_pre_hook(capture(heads, i, False)))
        handles.append(adapter.neuron_output_module(i).register_forward_pre_hook(capture(neurons, i, i == last)))

    pad_id = 0 if pad_token_id is None else int(pad_token_id)
    batches = length_batches(holders, lengths, batch_size)
    progress.start_stage("collect", total=len(batches), message=f"{s} tokens from {len(holders)} examples")
    try:
        with evaluating(model), torch.inference_mode():
            for step, ids in enumerate(batches, start=1):
                progress.checkpoint()
                # a row shorter than the batch's longest runs on with its own later tokens, not padding: they
                # change nothing before them, and a batch without padding takes the causal attention's fast path
                width = max(lengths[int(e)] for e in ids)
                rows = [_truncated(examples[int(e)], width) for e in ids]
                batch = pad_batch(rows, pad_id, columns=INPUT_COLUMNS, device=device)
                current["ids"] = batch["input_ids"]
                row_of = {int(e): r for r, e in enumerate(ids)}
                slots = np.flatnonzero(np.isin(sample.example, ids))
                current["slot"] = torch.as_tensor(slots, device=device)
                current["row"] = torch.as_tensor([row_of[int(sample.example[k])] for k in slots], device=device)
                current["tok"] = torch.as_tensor(sample.token[slots], device=device)
                try:
                    model(**batch, **model_kwargs(adapter))
                except _StopForward:
                    pass
                progress.update(step, total=len(batches))
    finally:
        for h in handles:
            h.remove()
    return Activations(heads, neurons, sample, examples_run=len(holders), batches_run=len(batches))
