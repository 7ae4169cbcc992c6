"""Least-squares compensation for removed layers: the kept layer below a removed run absorbs its change.

docs/algorithms.md, compensation, removed layers. A depth-pruning method (ShortGPT) keeps
every unit of the layers it keeps, so there is no kept column to refit in the sense of
:mod:`ppruning.recovery.compensation`; what the model loses is each removed block's
change to the residual stream. In a pre-norm block the FFN output projection's output is
added straight to that stream, so the kept layer ``p`` just below a run of removed layers
``p+1 .. q`` can carry a linear part of that change: its FFN output projection W [d, D]
is refitted on all its D inputs by the same ridge least squares as the unit refit,

    min_{W', b'}  sum_n w_n || W x_n + delta_n - W' x_n - b' ||^2  +  lam || W' - W ||_F^2

with ``delta_n`` the removed run's change at token n: with target ``current``, the removed
blocks run on the output of layer ``p`` in the model compensated so far (``h_q - h_p``); with
target ``dense``, the dense model's stream after ``q`` minus the current stream after ``p``
(so the fit also makes up for what the layers below lost). The ridge pulls toward the
unchanged projection: too few tokens leave the layer as it was. Layers are taken bottom to
top on the compensated model's stream (sequential; ``sequential: false`` fits every run on
the dense model's stream). A run that starts at layer 0 has no layer below it and is not
refitted; neither is one whose lower layer's FFN output is normalised before it reaches the
stream (post-norm blocks), and the report says so.

The refit is written in place (before the layers are dropped); :func:`layer_refit_tensors`
are stored beside the method's files under the original layer indices, and
:func:`apply_layer_refit` puts them back into an unpruned model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.blocks import capture_inputs, evaluating, run_block
from ppruning.recovery.compensation import (
    Compensation,
    CompensationConfig,
    add_refit_change,
    at_real,
    calibration_batches,
    output_module,
    solve,
)
from ppruning.recovery.moments import Moments
from ppruning.recovery.outliers import token_weights


def removed_runs(removed: Sequence[int], num_layers: int) -> list[tuple[int, list[int]]]:
    """(the kept layer just below, the removed layers above it) for each maximal run of removed layers.

    A run that starts at layer 0 has no layer below: its first element is -1.
    """
    gone = sorted(set(int(i) for i in removed))
    runs: list[tuple[int, list[int]]] = []
    for i in gone:
        if runs and runs[-1][1][-1] == i - 1:
            runs[-1][1].append(i)
        else:
            runs.append((i - 1, [i]))
    assert all(0 <= i < num_layers for i in gone)
    return runs


@torch.no_grad()
def compensate_layer_drop(
    model: nn.Module,
    adapter: ArchAdapter,
    removed: Sequence[int],
    examples: Sequence[Mapping[str, Any]],
    config: CompensationConfig,
    *,
    pad_token_id: int = 0,
    batch_size: int = 32,
    progress: Progress = NULL_PROGRESS,
) -> Compensation:
    """Refit, in place, the FFN output projection below each removed run of ``model`` (whose layers are all there).

    ``result.refits`` has ``(p, "ffn")`` per refitted layer ``p`` (original indices); ``result.layers`` one
    record per removed run, refitted or not and why.
    """
    num_layers = len(adapter.layers())
    runs = removed_runs(removed, num_layers)
    result = Compensation()
    below = {p: run for p, run in runs if p >= 0}
    if "ffn" not in config.parts or not adapter.ffn_output_adds_to_residual():
        why = (
            "compensation.parts has no 'ffn'"
            if "ffn" not in config.parts
            else "this family's FFN output is normalised before it reaches the residual stream"
        )
        result.layers = [{"removed": run, "below": p, "refit": False, "why": why} for p, run in runs]
        return result
    result.examples, batches = calibration_batches(model, examples, config.tokens, batch_size, pad_token_id)
    progress.start_stage("compensate", total=num_layers, message=f"{result.examples} examples, {len(below)} layer(s)")
    blocks = adapter.layers()
    with evaluating(model):
        replay = capture_inputs(model, adapter, batches)
        # sequential: the compensated model's stream (removed layers skipped); else the dense model's stream
        stream = list(replay.hidden)
        dense = list(replay.hidden) if (config.sequential and config.target == "dense") else None
        for p, run in runs:
            if p < 0:
                result.layers.append({"removed": run, "below": None, "refit": False, "why": "no layer below"})
        covered = {i for run in below.values() for i in run}  # run by the refit of the layer below them
        gone = {i for _, run in runs for i in run}
        for i in range(num_layers):
            progress.checkpoint()
            if i in below:
                stream, dense = _refit_below(adapter, blocks, i, below[i], config, replay, stream, dense, result)
            elif i not in covered:
                if i not in gone or not config.sequential:
                    stream = [run_block(blocks[i], h, replay.calls[b][i]) for b, h in enumerate(stream)]
                if dense is not None:
                    dense = [run_block(blocks[i], h, replay.calls[b][i]) for b, h in enumerate(dense)]
            progress.update(i + 1)
        result.tokens = int(sum(int(r.sum()) for r in replay.real))
    return result


def _refit_below(
    adapter: ArchAdapter,
    blocks: Sequence[nn.Module],
    p: int,
    run: list[int],
    config: CompensationConfig,
    replay: Any,
    stream: list[torch.Tensor],
    dense: list[torch.Tensor] | None,
    result: Compensation,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Fit layer ``p``'s FFN output projection to add the removed ``run``'s change; the stream after the run."""
    module = output_module(adapter, p, "ffn")
    weight = adapter.weight_out_in(module)
    bias = module.bias if (config.bias and getattr(module, "bias", None) is not None) else None
    device = stream[0].device
    inputs: list[torch.Tensor] = []

    def take(mod: nn.Module, args: tuple[Any, ...]) -> None:
        inputs.append(args[0].detach())

    handle = module.register_forward_pre_hook(take)
    try:
        outputs = [run_block(blocks[p], h, replay.calls[b][p]) for b, h in enumerate(stream)]
    finally:
        handle.remove()
    dense_after = None
    if dense is not None:  # the dense model runs layer p and the removed run
        dense_after = [run_block(blocks[p], h, replay.calls[b][p]) for b, h in enumerate(dense)]
        for i in run:
            dense_after = [run_block(blocks[i], h, replay.calls[b][i]) for b, h in enumerate(dense_after)]
    moments = Moments.empty(weight.shape[1], weight.shape[0], device)
    w = weight.detach().to(torch.float32)
    through_run: list[torch.Tensor] = []  # sequential=False: the dense stream after the run
    for b, out in enumerate(outputs):
        if dense_after is not None:
            after = dense_after[b]
        else:
            after = out
            for i in run:
                after = run_block(blocks[i], after, replay.calls[b][i])
            if not config.sequential:
                through_run.append(after)
        real = replay.real[b]
        x = at_real(inputs[b], real)
        delta = at_real(after, real) - at_real(out, real)
        y = x.to(torch.float32) @ w.T + delta.to(torch.float32)  # the projection's output, bias left out
        moments.add(x, token_weights(x, config.outliers, config.outlier_ratio), y)
    everything = torch.arange(weight.shape[1])
    before = (weight.detach().clone(), bias.detach().clone() if bias is not None else None)
    refit = solve(moments, weight, bias, everything, config.alpha)
    weight[:, :] = refit.weight.to(weight.device, weight.dtype)
    if refit.bias is not None and bias is not None:
        bias.copy_(refit.bias.to(bias.device, bias.dtype))
    result.refits[(p, "ffn")] = (refit.error_before, refit.error_after)
    result.outlier_tokens += moments.outliers
    result.peak_statistics_bytes = max(result.peak_statistics_bytes, moments.nbytes())
    result.layers.append(
        {
            "removed": run,
            "below": p,
            "refit": True,
            "ffn_error_before": refit.error_before,
            "ffn_error_after": refit.error_after,
            "ffn_outlier_tokens": moments.outliers,
        }
    )
    if not config.sequential:
        return through_run, None
    add_refit_change(adapter, module, before, (everything, inputs), outputs)
    return outputs, dense_after


def layer_refit_tensors(model: nn.Module, adapter: ArchAdapter, refitted: Sequence[int]) -> dict[str, torch.Tensor]:
    """The refitted FFN output projections by original layer index (``layers.<p>.ffn.weight`` [d, D], ``.bias``).

    Read from the model before its layers are dropped (the indices are the unpruned model's).
    """
    tensors: dict[str, torch.Tensor] = {}
    for p in sorted(refitted):
        module = output_module(adapter, p, "ffn")
        tensors[f"layers.{p}.ffn.weight"] = adapter.weight_out_in(module).detach().clone().contiguous()
        if getattr(module, "bias", None) is not None:
            tensors[f"layers.{p}.ffn.bias"] = module.bias.detach().clone().contiguous()
    return tensors


@torch.no_grad()
def apply_layer_refit(model: nn.Module, adapter: ArchAdapter, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write stored refits into an unpruned ``model``; drop its layers afterwards."""
    for name, value in tensors.items():
        _, layer, _, kind = name.split(".")
        module = output_module(adapter, int(layer), "ffn")
        target = adapter.weight_out_in(module) if kind == "weight" else module.bias
        target.copy_(value.to(target.device, target.dtype))
