"""Running a model one transformer block at a time, for any family: the inputs of the first block, replayed.

A layer-by-layer fit needs each block's input on the calibration batches, from the model
as pruned and fitted so far. Running the whole model again for every layer costs
O(layers^2) block passes; instead (as SparseGPT and its successors do) the first block's
input is captured once per batch together with the other arguments the backbone passes
to every block (attention mask, rotary position embeddings, position ids: what a family
computes once per forward), and each block is then called directly on the previous
block's output. The arguments are captured per block, so a family whose blocks get
different masks (sliding-window layers) is replayed faithfully.

Held per batch: the block input [batch, length, hidden] (the residual stream at one
layer boundary), not any projection's wide input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ppruning.arch.base import ArchAdapter


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Raised once every block's arguments are captured: the rest of the forward is not needed."""


@dataclass
class BlockCall:
    """One batch's arguments to one block, the hidden states left out."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class ReplayInputs:
    """Per batch: the first block's input, the real-token mask, and every block's other arguments."""

    hidden: list[torch.Tensor]
    real: list[torch.Tensor]
    calls: list[list[BlockCall]]  # [batch][block]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block, its training mode restored after (a fit must not change it)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_kwargs(adapter: ArchAdapter) -> dict[str, Any]:
    """Extra arguments of the forward passes: no key/value cache on a decoder (nothing is generated)."""
    return {"use_cache": False} if adapter.is_decoder else {}


@torch.no_grad()
def capture_inputs(model: nn.Module, adapter: ArchAdapter, batches: Sequence[dict[str, torch.Tensor]]) -> ReplayInputs:
    """One embedding pass per batch: the first block's input and every block's arguments (no block runs)."""
    blocks = list(adapter.layers())
    hidden: list[torch.Tensor] = []
    calls: list[list[BlockCall]] = []
    current: list[BlockCall] = []

    def recorder(index: int) -> Any:
        def forward(*args: Any, **kwargs: Any) -> Any:
            if args:
                h, rest = args[0], tuple(args[1:])
            else:
                h, rest = kwargs.pop("hidden_states"), ()
            if index == 0:
                hidden.append(h.detach())
            current.append(BlockCall(rest, dict(kwargs)))
            if index == len(blocks) - 1:
                raise _Stop
            return h  # the next block sees the same hidden states; only the arguments matter here

        return forward

    for i, block in enumerate(blocks):
        block.forward = recorder(i)  # an instance attribute: removed below, the class's forward returns
    try:
        for batch in batches:
            current = []
            try:
                model(**batch, **model_kwargs(adapter))
            except _Stop:
                pass
            calls.append(current)
    finally:
        for block in blocks:
            del block.forward
    real = [batch["attention_mask"].bool() for batch in batches]
    return ReplayInputs(hidden, real, calls)


def run_block(block: nn.Module, hidden: torch.Tensor, call: BlockCall) -> torch.Tensor:
    """``block`` on ``hidden`` with the captured arguments; its output hidden states."""
    out = block(hidden, *call.args, **call.kwargs)
    return out[0] if isinstance(out, tuple) else out
