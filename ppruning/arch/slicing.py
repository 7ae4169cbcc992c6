"""In-place slicing of projection layers: the only place weights are cut.

``nn.Linear`` stores weight as [out, in]; GPT-2's ``Conv1D`` as [in, out] (transposed).
Each helper keeps the module object (so hooks and references survive), replaces its
parameters with the selected slices and updates the size attributes the module's
``forward`` and ``repr`` read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def unit_columns(keep: Sequence[int], width: int, offset: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """Column indices of the kept units when unit ``u`` spans ``[u*width, (u+1)*width)``."""
    units = torch.as_tensor(list(keep), dtype=torch.long, device=device)
    cols = units[:, None] * width + torch.arange(width, device=device)[None, :]
    return cols.reshape(-1) + offset


def _param(t: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    """``t`` is an ``index_select`` result: new memory of its own, so it is wrapped, not copied (a copy
    would hold a second slice of every matrix at once while a model is cut)."""
    return nn.Parameter(t.contiguous(), requires_grad=like.requires_grad)


def keep_linear_outputs(linear: nn.Linear, index: torch.Tensor) -> None:
    """Keep output features ``index`` (rows of the weight, entries of the bias)."""
    index = index.to(linear.weight.device)
    linear.weight = _param(linear.weight.data.index_select(0, index), linear.weight)
    if linear.bias is not None:
        linear.bias = _param(linear.bias.data.index_select(0, index), linear.bias)
    linear.out_features = int(index.numel())


def keep_linear_inputs(linear: nn.Linear, index: torch.Tensor) -> None:
    """Keep input features ``index`` (columns of the weight; the bias is untouched)."""
    index = index.to(linear.weight.device)
    linear.weight = _param(linear.weight.data.index_select(1, index), linear.weight)
    linear.in_features = int(index.numel())


def keep_attention_units(
    query: nn.Linear,
    key: nn.Linear,
    value: nn.Linear,
    output: nn.Linear,
    query_cols: torch.Tensor,
    kv_cols: torch.Tensor | None = None,
) -> None:
    """Cut head units out of an attention with separate Q, K, V projections (the families but GPT-2).

    ``query_cols``: the kept units' query columns, which are also the output projection's
    kept inputs; ``kv_cols``: their key/value columns (grouped-query attention), the same
    as ``query_cols`` when each unit is one head.
    """
    kv_cols = query_cols if kv_cols is None else kv_cols
    keep_linear_outputs(query, query_cols)
    keep_linear_outputs(key, kv_cols)
    keep_linear_outputs(value, kv_cols)
    keep_linear_inputs(output, query_cols)


def keep_conv1d_outputs(conv: nn.Module, index: torch.Tensor) -> None:
    """GPT-2 ``Conv1D``: keep outputs ``index`` (columns of the [in, out] weight, bias entries)."""
    index = index.to(conv.weight.device)
    conv.weight = _param(conv.weight.data.index_select(1, index), conv.weight)
    conv.bias = _param(conv.bias.data.index_select(0, index), conv.bias)
    conv.nf = int(index.numel())


def keep_conv1d_inputs(conv: nn.Module, index: torch.Tensor) -> None:
    """GPT-2 ``Conv1D``: keep inputs ``index`` (rows of the [in, out] weight)."""
    index = index.to(conv.weight.device)
    conv.weight = _param(conv.weight.data.index_select(0, index), conv.weight)
    conv.nx = int(index.numel())
