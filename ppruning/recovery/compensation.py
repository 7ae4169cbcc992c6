"""Least-squares compensation: refit each layer's output projections on the kept units, layer by layer.

docs/algorithms.md, compensation.

Once a method has chosen the units, a layer's attention output projection sees only the
kept heads' columns and its FFN output projection only the kept neurons. Masking alone
throws away whatever the removed units added; but when a removed unit's output is close
to a combination of kept ones, the kept columns can carry it. Following SlimGPT (Ling et
al., 2024) and ZipLM (Kurtic et al., 2023), each output projection W [d, D] is refitted
on its kept input columns K by ridge least squares on calibration tokens:

    min_{W'_K, b'}  sum_n w_n || t_n - W'_K x_{n,K} - b' ||^2  +  lam || W'_K - W_K ||_F^2

with ``x`` the projection's input from the model pruned and compensated up to it
(``sequential``), ``t`` the target: ``current``, the unpruned projection on the same
inputs (``W x_n``, as SparseGPT/SlimGPT/ZipLM), or ``dense``, the dense model's output of
that projection on the dense model's own inputs (so a layer also makes up for what the
layers below it lost). The ridge pulls toward plain masking (``W_K``), scaled by
``alpha`` times the mean diagonal of the normal matrix, so too few tokens fall back to
masking rather than to noise. Where the projection has a bias (BERT, GPT-2, OPT), ``b'``
absorbs the mean residual (FLAP's bias compensation: the fit on centred statistics);
Llama-style projections have none and are fitted on uncentred statistics (adding a bias
would change the architecture). ``w_n`` down-weights tokens with massive activations
(:mod:`ppruning.recovery.outliers`).

Heads: a head unit's columns are a block of the attention output projection (a KV group
with its query heads under grouped-query attention); the refit is over all kept columns,
so nothing is per family: the adapter's layout says where the projections are and the
masks which columns stay.

Statistics are streamed (:mod:`ppruning.recovery.moments`, float64, O(D^2) per
projection); one layer's statistics are alive at a time. Blocks are replayed one at a
time (:mod:`ppruning.recovery.blocks`): per layer one pass of the dense block (targets
``dense`` only), a pass up to each refitted projection, and one pass of the compensated
block to feed the next layer. Where the FFN's output is added straight to the residual
stream (pre-norm blocks: :meth:`~ppruning.arch.base.ArchAdapter.ffn_output_adds_to_residual`),
the FFN's pass runs the whole block and keeps its output and the FFN output projection's
kept inputs; once that projection is refit, the next layer's input is that output plus
what the refit changes (``x_K (W'_K - W_K)^T + b' - b``), so the block is not run again.
Non-sequential (``sequential: false``): one pass of the dense model, every layer fitted on
dense inputs (both targets are then the same).

The refit writes the kept columns (and biases) of the dense model in place; the masked
columns are cut later by the surgery. :func:`refit_tensors` (read from the cut model) are stored beside the masks
(``compensation.safetensors``): masks plus these tensors reproduce the checkpoint
(:func:`apply_refit` then :func:`ppruning.model.surgery.prune_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.model.heap import release_free_memory
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.blocks import BlockCall, ReplayInputs, capture_inputs, evaluating, run_block
from ppruning.recovery.moments import Moments
from ppruning.recovery.outliers import OutlierHandling, token_weights
from ppruning.tasks.collate import INPUT_COLUMNS, pad_batch
from ppruning.units.masks import Masks

COMPENSATION_FILE = "compensation.safetensors"
PARTS = ("attention", "ffn")


class CompensationConfig(BaseModel):
    """Least-squares compensation of the output projections after the units are chosen.

    Seconds to a minute of work on calibration inputs, no labels; on by default for every
    structured method, and after a layers method for the layer below each removed run
    (:mod:`ppruning.recovery.layer_compensation`; README, decoder benchmark).
    """

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    tokens: int = Field(
        default=8192, ge=16, le=10_000_000, description="Real calibration tokens (from the task inputs read)."
    )
    alpha: float = Field(
        default=1e-2,
        ge=0.0,
        le=1e6,
        description="Ridge toward plain masking, relative to the mean diagonal of the normal matrix.",
    )
    target: Literal["current", "dense"] = Field(
        default="current",
        description="What a refitted projection matches: the unpruned projection on the same (pruned model's) "
        "inputs ('current'), or the dense model's output on the dense model's inputs ('dense').",
    )
    sequential: bool = Field(
        default=True,
        description="Fit layer by layer on inputs of the model pruned and compensated so far (true), or every "
        "layer on the dense model's inputs (false).",
    )
    outliers: OutlierHandling = Field(
        default="downweight",
        description="Tokens with massive activations: weigh at most outlier_ratio typical tokens ('downweight'), "
        "left out ('exclude') or counted like any other ('keep').",
    )
    outlier_ratio: float = Field(
        default=10.0,
        gt=1.0,
        le=1e9,
        description="Input energy over the batch median beyond which a token is an outlier.",
    )
    bias: bool = Field(default=True, description="Refit the projections' biases too, where they have one.")
    parts: tuple[Literal["attention", "ffn"], ...] = Field(
        default=PARTS, min_length=1, description="Which output projections are refitted."
    )


@dataclass
class Refit:
    """One projection's fit: the new kept columns [d, k], the new bias (or None), relative errors."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    error_before: float  # sum w ||t - masked output||^2 / sum w ||t||^2 (plain masking)
    error_after: float  # the same with the refit


def solve(
    moments: Moments,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    kept: torch.Tensor,
    alpha: float,
) -> Refit:
    """The ridge least-squares refit of ``weight`` [d, D] on the kept columns ``kept`` from ``moments``.

    Without an explicit target in the moments, the target is ``weight`` applied to the same inputs.
    """
    w = weight.detach().to(torch.float64).to(moments.gram.device)
    kept = kept.to(w.device)
    n = max(moments.weight, 1e-30)
    w_k = w[:, kept]
    # one [k, k] copy of the normal matrix at a time, regularised in place: memory stays O(D^2), not a multiple
    if moments.cross is None:  # target W x: its moments follow from the input's
        gw = moments.gram @ w.T  # [D, d], once: the cross moments' kept rows and ||W x||^2 both read it
        c_k = gw.index_select(0, kept)
        sum_y = moments.sum_x @ w.T
        yy = float((gw * w.T).sum())  # sum_n w_n ||W x_n||^2 = <G, W^T W> (G symmetric)
        del gw
    else:
        assert moments.sum_y is not None
        c_k, sum_y, yy = moments.cross.index_select(0, kept), moments.sum_y, moments.yy
    g_kk = moments.gram.index_select(0, kept).index_select(1, kept)
    total = max(yy, 1e-30)
    xbar, ybar = moments.sum_x[kept] / n, sum_y / n
    if bias is not None:  # centre: the bias takes the mean residual
        g_kk.addr_(xbar, xbar, alpha=-n)
        c_k = c_k - n * torch.outer(xbar, ybar)
        yy = yy - n * float(ybar @ ybar)
    k = len(kept)
    lam = alpha * float(g_kk.diagonal().mean().clamp(min=1e-30)) if k else 0.0

    def residual(wt: torch.Tensor) -> float:  # wt: [k, d]; g_kk is unregularised while this runs
        return max(0.0, yy - 2.0 * float((wt * c_k).sum()) + float((wt * (g_kk @ wt)).sum()))

    before = residual(w_k.T)
    g_kk.diagonal().add_(lam)
    new_t = torch.linalg.solve(g_kk, c_k + lam * w_k.T)  # [k, d]
    g_kk.diagonal().sub_(lam)
    new_bias = None
    if bias is not None:
        b = bias.detach().to(torch.float64).to(w.device)
        shift = ybar - w_k @ xbar  # what plain masking loses on the mean
        before += n * float(shift @ shift)
        new_bias = b + ybar - new_t.T @ xbar
    return Refit(new_t.T.contiguous(), new_bias, before / total, residual(new_t) / total)


# --------------------------------------------------------------------------- the layer-by-layer run


@dataclass
class Compensation:
    """What was refitted: per layer and projection the new tensors, and per layer the errors."""

    #: (layer, part) -> relative errors before and after; the refitted tensors themselves live in the model only
    #: (a copy here would hold a third of every layer's weights again), see :func:`refit_tensors`.
    refits: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    examples: int = 0
    outlier_tokens: int = 0
    peak_statistics_bytes: int = 0


def calibration_rows(examples: Sequence[Mapping[str, Any]], tokens: int) -> list[Mapping[str, Any]]:
    """The first examples that hold ``tokens`` real tokens (in order: the run's sample is already seeded)."""
    rows, seen = [], 0
    for ex in examples:
        if seen >= tokens:
            break
        rows.append(ex)
        mask = ex.get("attention_mask")
        seen += int(sum(mask)) if mask is not None else len(ex["input_ids"])
    return rows


#: Padded tokens per calibration batch at most: a block's activations on a batch (the FFN's intermediate
#: tensors, the attention scores) are the peak of the fit's memory, so a batch of 32 rows of 512 tokens
#: (16k tokens) rose SmolLM2-135M's resident memory by 0.9x the model; 2,048 tokens keep it near 0.2x.
BATCH_TOKENS = 2048


def calibration_batches(
    model: nn.Module,
    examples: Sequence[Mapping[str, Any]],
    tokens: int,
    batch_size: int,
    pad_token_id: int,
    batch_tokens: int = BATCH_TOKENS,
) -> tuple[int, list[dict[str, torch.Tensor]]]:
    """(examples used, their padded batches on the model's device): the first ``tokens`` real tokens of a fit."""
    rows = calibration_rows(examples, tokens)
    return len(rows), token_batches(rows, batch_size, pad_token_id, next(model.parameters()).device, batch_tokens)


def token_batches(
    rows: Sequence[Mapping[str, Any]],
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
    batch_tokens: int = BATCH_TOKENS,
) -> list[dict[str, torch.Tensor]]:
    """Padded batches of at most ``batch_size`` rows and about ``batch_tokens`` padded tokens (one row at least)."""
    batches, j = [], 0
    while j < len(rows):
        n, longest = 0, 0
        while j + n < len(rows) and n < batch_size:
            longest_next = max(longest, len(rows[j + n]["input_ids"]))
            if n and longest_next * (n + 1) > batch_tokens:
                break
            n, longest = n + 1, longest_next
        batches.append(pad_batch(rows[j : j + n], pad_token_id, columns=INPUT_COLUMNS, device=device))
        j += n
    return batches


class _StopBlock(Exception):  # noqa: N818 - control flow, not an error
    """Raised once the projection being measured has been seen: the rest of the block is not needed."""


def kept_columns(masks: Masks, adapter: ArchAdapter, layer: int, part: str) -> torch.Tensor:
    """The kept input columns of ``layer``'s attention or FFN output projection (long indices)."""
    if part == "attention":
        cols = masks.head_mask[layer].repeat_interleave(adapter.layer_shape(layer).head_unit_width)
    else:
        cols = masks.neuron_mask[layer]
    return torch.nonzero(cols > 0.5).flatten()


def output_module(adapter: ArchAdapter, layer: int, part: str) -> nn.Module:
    return adapter.head_output_module(layer) if part == "attention" else adapter.neuron_output_module(layer)


class _LayerPass:
    """Hooks on one block's two output projections for one pass: masking, measuring inputs, capturing outputs."""

    def __init__(self, adapter: ArchAdapter, layer: int, masks: Masks) -> None:
        self.modules = {p: output_module(adapter, layer, p) for p in PARTS}
        self.column_mask = {
            "attention": masks.head_mask[layer].repeat_interleave(adapter.layer_shape(layer).head_unit_width),
            "ffn": masks.neuron_mask[layer],
        }
        self.mask = False
        self.real: torch.Tensor | None = None
        self.inputs: dict[str, Any] = {}  # part -> callback(x at real tokens)
        self.outputs: dict[str, list[torch.Tensor]] = {}
        self.stop_after: str | None = None
        self.kept_inputs: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}  # part -> (columns, inputs)
        self.handles: list[Any] = []

    def __enter__(self) -> _LayerPass:
        for part, module in self.modules.items():
            self.handles.append(module.register_forward_pre_hook(self._pre(part)))
            self.handles.append(module.register_forward_hook(self._post(part)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def _pre(self, part: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> Any:
            x = args[0]
            assert self.real is not None
            if part in self.inputs:
                self.inputs[part](at_real(x, self.real))
            if part in self.kept_inputs:  # every position (the block's output has them all), kept columns
                columns, store = self.kept_inputs[part]
                store.append(x.index_select(-1, columns.to(x.device)))
            if self.stop_after == part:
                raise _StopBlock
            if self.mask:
                cm = self.column_mask[part].to(device=x.device, dtype=x.dtype)
                return (x * cm, *args[1:])
            return None

        return hook

    def _post(self, part: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            if part in self.outputs:
                assert self.real is not None
                y = at_real(output, self.real)
                bias = getattr(module, "bias", None)
                self.outputs[part].append(y - bias if bias is not None else y)

        return hook

    def run(self, block: nn.Module, hidden: torch.Tensor, real: torch.Tensor, call: BlockCall) -> torch.Tensor | None:
        self.real = real
        try:
            return run_block(block, hidden, call)
        except _StopBlock:
            return None


def at_real(t: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``t`` [batch, length, width] or flattened [batch * length, width] (OPT's FFN) at the real tokens."""
    return t.reshape(-1, t.shape[-1])[real.reshape(-1)]


def _write(adapter: ArchAdapter, module: nn.Module, kept: torch.Tensor, refit: Refit) -> None:
    w = adapter.weight_out_in(module)
    w[:, kept.to(w.device)] = refit.weight.to(w.device, w.dtype)
    if refit.bias is not None:
        module.bias.copy_(refit.bias.to(module.bias.device, module.bias.dtype))


@torch.no_grad()
def compensate(
    model: nn.Module,
    adapter: ArchAdapter,
    masks: Masks,
    examples: Sequence[Mapping[str, Any]],
    config: CompensationConfig,
    *,
    pad_token_id: int = 0,
    batch_size: int = 32,
    progress: Progress = NULL_PROGRESS,
) -> Compensation:
    """Refit ``model``'s output projections (in place, the full model: kept columns and biases) for ``masks``."""
    shape = adapter.shape()
    used, batches = calibration_batches(model, examples, config.tokens, batch_size, pad_token_id)
    mode = f"{'sequential' if config.sequential else 'one pass'}, target {config.target}"
    progress.start_stage("compensate", total=shape.num_layers, message=f"{used} examples, {mode}")
    result = Compensation(examples=used)
    with evaluating(model):
        replay = capture_inputs(model, adapter, batches)
        current = replay.hidden
        dense = list(current) if config.sequential and config.target == "dense" else None
        blocks = adapter.layers()
        for i in range(shape.num_layers):
            progress.checkpoint()
            current, dense = _layer(adapter, blocks[i], i, masks, config, replay, current, dense, result)
            release_free_memory()  # the layer's statistics and activations: back to the OS, not kept by the heap
            progress.update(i + 1)
        result.tokens = int(sum(int(r.sum()) for r in replay.real))
    return result


def _layer(
    adapter: ArchAdapter,
    block: nn.Module,
    i: int,
    masks: Masks,
    config: CompensationConfig,
    replay: ReplayInputs,
    current: list[torch.Tensor],
    dense: list[torch.Tensor] | None,
    result: Compensation,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Fit layer ``i``; returns the next block's inputs (compensated model, and dense model where kept)."""
    parts = [p for p in config.parts if len(kept_columns(masks, adapter, i, p)) < _width(adapter, i, p)]
    report: dict[str, Any] = {"layer": i, "refit": parts}
    device = current[0].device if current else torch.device("cpu")

    def fit(part: str, moments: Moments) -> None:
        module = output_module(adapter, i, part)
        kept = kept_columns(masks, adapter, i, part)
        bias = module.bias if (config.bias and getattr(module, "bias", None) is not None) else None
        refit = solve(moments, adapter.weight_out_in(module), bias, kept, config.alpha)
        _write(adapter, module, kept, refit)
        result.refits[(i, part)] = (refit.error_before, refit.error_after)
        report[f"{part}_error_before"] = refit.error_before
        report[f"{part}_error_after"] = refit.error_after
        report[f"{part}_outlier_tokens"] = moments.outliers
        result.outlier_tokens += moments.outliers
        result.peak_statistics_bytes = max(result.peak_statistics_bytes, moments.nbytes())

    def accumulate(moments: Moments, targets: list[torch.Tensor] | None, b: int) -> Any:
        def add(x: torch.Tensor) -> None:
            w = token_weights(x, config.outliers, config.outlier_ratio)
            moments.add(x, w, targets[b] if targets is not None else None)

        return add

    with _LayerPass(adapter, i, masks) as hooks:
        if not config.sequential:  # dense inputs, dense model: one pass fits both projections
            moments = {p: Moments.empty(_width(adapter, i, p), None, device) for p in parts}
            nxt = []
            for b, h in enumerate(current):
                hooks.inputs = {p: accumulate(moments[p], None, b) for p in parts}
                nxt.append(hooks.run(block, h, replay.real[b], replay.calls[b][i]))
            for p in parts:
                fit(p, moments[p])
            result.layers.append(report)
            return nxt, None

        targets: dict[str, list[torch.Tensor]] | None = None
        next_dense = None
        if dense is not None and parts:  # the dense block's outputs (before any refit of this layer)
            hooks.outputs = {p: [] for p in parts}
            next_dense = [hooks.run(block, h, replay.real[b], replay.calls[b][i]) for b, h in enumerate(dense)]
            targets, hooks.outputs = hooks.outputs, {}
        elif dense is not None:
            next_dense = [run_block(block, h, replay.calls[b][i]) for b, h in enumerate(dense)]
        hooks.mask = True
        # the FFN's output goes straight into the residual: its pass runs the whole block, corrected after the fit
        whole = parts[-1] if parts and parts[-1] == "ffn" and adapter.ffn_output_adds_to_residual() else None
        nxt: list[torch.Tensor | None] = []
        for part in parts:  # attention first: the FFN's inputs depend on its refit
            target_width = adapter.hidden_size() if targets is not None else None
            moments = Moments.empty(_width(adapter, i, part), target_width, device)
            hooks.stop_after = None if part == whole else part
            if part == whole:
                hooks.kept_inputs = {part: (kept_columns(masks, adapter, i, part), [])}
            for b, h in enumerate(current):
                hooks.inputs = {part: accumulate(moments, targets[part] if targets else None, b)}
                out = hooks.run(block, h, replay.real[b], replay.calls[b][i])
                if part == whole:
                    nxt.append(out)
            hooks.inputs, hooks.stop_after = {}, None
            before = _kept_weights(adapter, output_module(adapter, i, part), masks, i, part) if part == whole else None
            fit(part, moments)
            del moments
            if targets is not None:
                targets[part] = []
            if before is not None:
                add_refit_change(adapter, output_module(adapter, i, part), before, hooks.kept_inputs.pop(part), nxt)
        if whole is None:
            nxt = [hooks.run(block, h, replay.real[b], replay.calls[b][i]) for b, h in enumerate(current)]
    result.layers.append(report)
    return nxt, next_dense  # type: ignore[return-value]


def _kept_weights(
    adapter: ArchAdapter, module: nn.Module, masks: Masks, layer: int, part: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Copies of a projection's kept columns [d, k] and its bias, before the refit overwrites them."""
    w = adapter.weight_out_in(module)
    kept = kept_columns(masks, adapter, layer, part).to(w.device)
    bias = getattr(module, "bias", None)
    return w[:, kept].clone(), (bias.detach().clone() if bias is not None else None)


def add_refit_change(
    adapter: ArchAdapter,
    module: nn.Module,
    before: tuple[torch.Tensor, torch.Tensor | None],
    kept_inputs: tuple[torch.Tensor, list[torch.Tensor]],
    outputs: list[torch.Tensor | None],
) -> None:
    """Add to each batch's block output what the refit changed in the projection's output (in place).

    The block ran with the projection's old kept columns on inputs whose removed columns were
    zeroed: its output changes by ``x_K (W'_K - W_K)^T + (b' - b)``, the rest of the block
    being unchanged (the output goes straight into the residual stream).
    """
    columns, inputs = kept_inputs
    w = adapter.weight_out_in(module)
    change = w[:, columns.to(w.device)] - before[0]  # [d, k]
    bias = getattr(module, "bias", None)
    shift = bias.detach() - before[1] if bias is not None and before[1] is not None else None
    for out, x in zip(outputs, inputs, strict=True):
        assert out is not None
        delta = x.reshape(-1, x.shape[-1]) @ change.T
        if shift is not None:
            delta += shift
        out.view(-1, out.shape[-1]).add_(delta.to(out.dtype))


def _width(adapter: ArchAdapter, layer: int, part: str) -> int:
    return int(adapter.weight_out_in(output_module(adapter, layer, part)).shape[1])


# --------------------------------------------------------------------------- stored with the masks


def refit_tensors(
    cut_model: nn.Module, adapter: ArchAdapter, refitted: Sequence[tuple[int, str]]
) -> dict[str, torch.Tensor]:
    """The refitted tensors by name (``layers.<i>.<part>.weight`` [d, kept], ``.bias`` [d]): the file's contents.

    Read from the model after the surgery, where an output projection holds exactly its kept columns.
    """
    tensors: dict[str, torch.Tensor] = {}
    for i, part in sorted(refitted):
        module = output_module(adapter, i, part)
        tensors[f"layers.{i}.{part}.weight"] = adapter.weight_out_in(module).detach().contiguous()
        if getattr(module, "bias", None) is not None:
            tensors[f"layers.{i}.{part}.bias"] = module.bias.detach().contiguous()
    return tensors


def save_refit(tensors: Mapping[str, torch.Tensor], directory: Path) -> Path:
    from safetensors.torch import save_file

    path = Path(directory) / COMPENSATION_FILE
    save_file(dict(tensors), str(path))
    return path


def load_refit(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / COMPENSATION_FILE))


@torch.no_grad()
def apply_refit(model: nn.Module, adapter: ArchAdapter, masks: Masks, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write stored refits into the full (uncut) ``model``'s kept columns and biases; cut it afterwards."""
    for name, value in tensors.items():
        _, layer, part, kind = name.split(".")
        i = int(layer)
        module = output_module(adapter, i, part)
        if kind == "weight":
            w = adapter.weight_out_in(module)
            w[:, kept_columns(masks, adapter, i, part).to(w.device)] = value.to(w.device, w.dtype)
        else:
            module.bias.copy_(value.to(module.bias.device, module.bias.dtype))


def summary(comp: Compensation, config: CompensationConfig) -> dict[str, Any]:
    """The report's ``compensation`` block: the config, what was refit, per-layer errors and their means."""

    def mean(key: str) -> float | None:
        values = [r[key] for r in comp.layers if key in r]
        return sum(values) / len(values) if values else None

    keys = [f"{p}_error_{w}" for p in PARTS for w in ("before", "after")]
    return {
        "config": config.model_dump(mode="json"),
        "tokens": comp.tokens,
        "examples": comp.examples,
        "outlier_tokens": comp.outlier_tokens,
        "refit": {p: sorted(i for (i, q) in comp.refits if q == p) for p in PARTS},
        "statistics_peak_mb": round(comp.peak_statistics_bytes / 2**20, 2),
        "mean": {k: mean(k) for k in keys},
        "layers": comp.layers,
    }
