"""Retraining-free reconstruction: per-unit output scales and a bias correction, by least squares.

docs/algorithms.md, reconstruction.

After a method has chosen the units, each layer's attention and FFN output projections
still see only the kept units' outputs. Following Kwon et al. (2022, mask tuning) and
FLAP (An et al., 2024, bias compensation), for every layer and unit type we fit one
scale per kept unit (and, where the projection has a bias, a bias correction) so that
the pruned projection's output matches the dense one on calibration tokens:

    min_s,delta  sum_n || y_n - sum_{u kept} s_u x_{n,u} W_u^T - delta ||^2 + lam ||s - 1||^2

``x_{n,u}`` is unit u's output at token n (a head: its ``head_unit_width`` columns),
``W_u`` its columns of the output projection, ``y_n = x_n W^T`` the dense output (bias
left out: it is the same on both sides), taken from the dense model. ``x`` comes, by
default (``sequential``), from the model pruned and fitted up to that layer, as in
Kwon et al.'s layer-wise reconstruction, so each layer also makes up for what the layers
before it lost; otherwise from the dense model (one pass, all layers at once). The
ridge pulls toward s = 1 (plain masking), scaled by the mean diagonal of the normal
matrix, so few tokens never give wild scales.
With a bias, ``delta`` is the mean residual, i.e. the problem is solved on centred
statistics (FLAP's compensation); Llama-style projections have no bias, so only the
scales are fitted, on uncentred statistics (adding a bias would change the architecture).

Everything comes from streamed sums over the real (non-pad) tokens of the dense model,
restricted to the kept columns: ``X_k^T X_k``, ``sum x``, ``sum y``, ``X_k^T (Y W_k)``
summed elementwise, ``sum ||y||^2``. The normal matrix is ``(X_k^T X_k) * (W_k^T W_k)``
summed over each unit's block of columns; no [tokens x hidden x units] tensor is ever
formed. Memory is O(layers * kept columns^2) in float64.

The scales are applied by multiplying the kept units' columns of the output projection
(:func:`apply_scales`), the correction is added to its bias; both are stored with the
masks, so masks plus scales reproduce the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.model.mask_hooks import apply_masks
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.recovery.blocks import evaluating
from ppruning.recovery.compensation import calibration_rows
from ppruning.tasks.collate import INPUT_COLUMNS, pad_batch
from ppruning.units.masks import Masks


class ReconstructConfig(BaseModel):
    """Retraining-free reconstruction after the units are chosen (:mod:`ppruning.recovery.reconstruct`).

    Per layer, a ridge least-squares fit of one output scale per kept head and neuron (and
    a correction of the output projection's bias, where it has one) so the pruned layer's
    output matches the dense layer's on calibration tokens. Seconds of work, no labels.
    """

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    tokens: int = Field(
        default=4096, ge=16, le=10_000_000, description="Real calibration tokens (from the task inputs read)."
    )
    ridge: float = Field(
        default=1e-2, ge=0.0, le=1e6, description="Ridge toward scale 1, relative to the normal matrix's mean diagonal."
    )
    bias: bool = Field(default=True, description="Also correct the output projections' biases (where they have one).")
    sequential: bool = Field(
        default=True,
        description="Fit layer by layer on the inputs of the model pruned and fitted so far (true), "
        "or every layer on the dense model's inputs in one pass (false).",
    )

@dataclass
class _Stats:
    """Streamed sums for one output projection, over its kept input columns ``cols``."""

    cols: torch.Tensor  # kept column indices (long)
    w_k: torch.Tensor  # [d, k] float64: the kept columns of W
    xx: torch.Tensor  # [k, k]
    xb: torch.Tensor  # [k]: sum_n x_{n,c} * (y_n W_c)
    sx: torch.Tensor  # [D]: sum of all columns (pruned ones too: the bias correction needs them)
    sy: torch.Tensor  # [d]
    yy: float = 0.0
    n: int = 0

    @classmethod
    def empty(cls, weight: torch.Tensor, cols: torch.Tensor) -> _Stats:
        """Empty sums for a projection whose weight, as [out, in], is ``weight``."""
        w = weight.detach().to(torch.float64)
        k, (d, width) = len(cols), w.shape
        z = dict(dtype=torch.float64, device=w.device)
        cols = cols.to(w.device)
        return cls(
            cols, w[:, cols], torch.zeros(k, k, **z), torch.zeros(k, **z), torch.zeros(width, **z), torch.zeros(d, **z)
        )

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """``x`` [n, D] inputs and ``y`` [n, d] outputs (without bias) at real tokens."""
        x, y = x.to(torch.float64), y.to(torch.float64)
        xk = x[:, self.cols]
        self.xx += xk.T @ xk
        self.xb += (xk * (y @ self.w_k)).sum(dim=0)
        self.sx += x.sum(dim=0)
        self.sy += y.sum(dim=0)
        self.yy += float((y * y).sum())
        self.n += x.shape[0]


@dataclass
class Fit:
    """One projection's fit: per kept unit a scale, the bias correction, relative errors."""

    scale: torch.Tensor  # [kept units]
    bias_delta: torch.Tensor | None  # [d]
    error_before: float  # ||Y - Y_masked||^2 / ||Y||^2 with plain masking
    error_after: float  # the same with the fitted scales (and correction)


def solve(stats: _Stats, width: int, ridge: float, bias: bool) -> Fit:
    """The ridge least-squares scales for units of ``width`` consecutive kept columns."""
    n = max(stats.n, 1)
    xx, xb, yy = stats.xx, stats.xb, stats.yy
    xbar_k, ybar = stats.sx[stats.cols] / n, stats.sy / n
    if bias:  # centre: the correction absorbs the mean residual
        xx = xx - n * torch.outer(xbar_k, xbar_k)
        xb = xb - n * xbar_k * (ybar @ stats.w_k)
        yy = yy - n * float(ybar @ ybar)
    k = len(stats.cols)
    units = k // width
    block = torch.zeros(k, units, dtype=torch.float64, device=xx.device)
    block[torch.arange(k), torch.arange(k) // width] = 1.0
    gram = block.T @ (xx * (stats.w_k.T @ stats.w_k)) @ block
    rhs = block.T @ xb
    ones = torch.ones(units, dtype=torch.float64, device=xx.device)
    lam = ridge * float(gram.diagonal().mean().clamp(min=1e-30))
    scale = torch.linalg.solve(gram + lam * torch.eye(units, dtype=gram.dtype, device=gram.device), rhs + lam * ones)

    def residual(s: torch.Tensor) -> float:
        return max(0.0, yy - 2.0 * float(s @ rhs) + float(s @ gram @ s))

    total = max(stats.yy, 1e-30)
    mean_shift = ybar - stats.w_k @ xbar_k  # what plain masking loses on the mean
    before = residual(ones) + (n * float(mean_shift @ mean_shift) if bias else 0.0)
    delta = None
    if bias:
        delta = ybar - stats.w_k @ (xbar_k * scale.repeat_interleave(width))
    return Fit(scale, delta, before / total, residual(scale) / total)


@dataclass
class Reconstruction:
    masks: Masks
    #: Per layer: relative output error of the attention and FFN projections before and after.
    layers: list[dict[str, float]] = field(default_factory=list)
    tokens: int = 0
    examples: int = 0


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Raised once the layer being fitted has been seen: nothing after it is needed."""


def _output_without_bias(module: nn.Module, output: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    y = output[keep]
    return y - module.bias if getattr(module, "bias", None) is not None else y


def _gather_parallel(
    model: nn.Module, adapter: ArchAdapter, batches: list[dict[str, torch.Tensor]], stats: list[tuple[_Stats, _Stats]]
) -> None:
    """One pass of the dense model: every layer's inputs and outputs at once."""
    real: dict[str, torch.Tensor] = {}

    def hook(target: _Stats) -> Any:
        def capture(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            target.add(args[0][real["mask"]], _output_without_bias(module, output, real["mask"]))

        return capture

    handles = []
    for i, pair in enumerate(stats):
        handles.append(adapter.head_output_module(i).register_forward_hook(hook(pair[0])))
        handles.append(adapter.neuron_output_module(i).register_forward_hook(hook(pair[1])))
    try:
        for batch in batches:
            real["mask"] = batch["attention_mask"].bool()
            model(**batch)
    finally:
        for h in handles:
            h.remove()


def _gather_layer(
    model: nn.Module,
    adapter: ArchAdapter,
    batches: list[dict[str, torch.Tensor]],
    layer: int,
    pair: tuple[_Stats, _Stats],
    current: Masks,
) -> None:
    """Layer ``layer``: dense outputs as targets, inputs from the model pruned (and fitted) so far."""
    modules = (adapter.head_output_module(layer), adapter.neuron_output_module(layer))
    for batch in batches:
        keep = batch["attention_mask"].bool()
        targets: list[torch.Tensor] = []
        inputs: list[torch.Tensor] = []

        def target_hook(
            module: nn.Module, args: tuple[Any, ...], output: torch.Tensor, targets: list = targets, keep: Any = keep
        ) -> None:
            targets.append(_output_without_bias(module, output, keep))
            if len(targets) == 2:
                raise _Stop

        def input_hook(module: nn.Module, args: tuple[Any, ...], inputs: list = inputs, keep: Any = keep) -> None:
            inputs.append(args[0][keep])
            if len(inputs) == 2:
                raise _Stop

        handles = [m.register_forward_hook(target_hook) for m in modules]
        try:
            model(**batch)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        # registered before the masking hooks, so they see the unmasked input
        handles = [m.register_forward_pre_hook(input_hook) for m in modules]
        try:
            with apply_masks(model, current, adapter):
                model(**batch)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        pair[0].add(inputs[0], targets[0])
        pair[1].add(inputs[1], targets[1])


@torch.no_grad()
def reconstruct(
    model: nn.Module,
    adapter: ArchAdapter,
    masks: Masks,
    examples: Sequence[Mapping[str, Any]],
    config: ReconstructConfig,
    *,
    pad_token_id: int = 0,
    batch_size: int = 32,
    progress: Progress = NULL_PROGRESS,
) -> Reconstruction:
    """Fit scales for ``masks`` on the dense ``model`` (left unchanged); returns masks carrying them.

    ``config.sequential``: layer by layer, each layer's inputs come from the model pruned and
    fitted up to it (so a layer also corrects what the layers before it lost), its targets
    from the dense model; two partial forward passes per layer. Otherwise every layer is
    fitted on the dense model's inputs, in one pass.
    """
    shape = adapter.shape()
    rows = calibration_rows(examples, config.tokens)
    device = next(model.parameters()).device
    batches = [
        pad_batch(rows[j : j + batch_size], pad_token_id, columns=INPUT_COLUMNS, device=device)
        for j in range(0, len(rows), batch_size)
    ]
    stats: list[tuple[_Stats, _Stats]] = []
    for i, la in enumerate(shape.layers):
        head_cols = torch.nonzero(masks.head_columns(i, la.head_unit_width) > 0).flatten()
        neuron_cols = torch.nonzero(masks.neuron_mask[i] > 0.5).flatten()
        stats.append(
            (
                _Stats.empty(adapter.weight_out_in(adapter.head_output_module(i)), head_cols),
                _Stats.empty(adapter.weight_out_in(adapter.neuron_output_module(i)), neuron_cols),
            )
        )
    attn_bias = adapter.head_output_module(0).bias is not None and config.bias
    ffn_bias = adapter.neuron_output_module(0).bias is not None and config.bias
    hidden = shape.hidden_size
    current = Masks(
        masks.head_mask,
        masks.neuron_mask,
        head_scale=masks.head_mask.clone(),
        neuron_scale=masks.neuron_mask.clone(),
        bias_delta_attention=torch.zeros(shape.num_layers, hidden) if attn_bias else None,
        bias_delta_ffn=torch.zeros(shape.num_layers, hidden) if ffn_bias else None,
    )
    mode = "sequential" if config.sequential else "parallel"
    progress.start_stage("reconstruct", total=shape.num_layers, message=f"{len(rows)} examples, {mode}")
    report = []
    with evaluating(model):
        if not config.sequential:
            _gather_parallel(model, adapter, batches, stats)
        for i, la in enumerate(shape.layers):
            progress.checkpoint()
            if config.sequential:
                _gather_layer(model, adapter, batches, i, stats[i], current)
            fit_h = solve(stats[i][0], la.head_unit_width, config.ridge, attn_bias)
            fit_n = solve(stats[i][1], 1, config.ridge, ffn_bias)
            assert current.head_scale is not None and current.neuron_scale is not None
            current.head_scale[i, masks.head_mask[i] > 0.5] = fit_h.scale.float().cpu()
            current.neuron_scale[i, masks.neuron_mask[i] > 0.5] = fit_n.scale.float().cpu()
            if fit_h.bias_delta is not None and current.bias_delta_attention is not None:
                current.bias_delta_attention[i] = fit_h.bias_delta.float().cpu()
            if fit_n.bias_delta is not None and current.bias_delta_ffn is not None:
                current.bias_delta_ffn[i] = fit_n.bias_delta.float().cpu()
            report.append(
                {
                    "attention_error_before": fit_h.error_before,
                    "attention_error_after": fit_h.error_after,
                    "ffn_error_before": fit_n.error_before,
                    "ffn_error_after": fit_n.error_after,
                }
            )
            stats[i] = None  # type: ignore[call-overload]  # free as we go
            progress.update(i + 1)
    tokens = int(sum(int(b["attention_mask"].sum()) for b in batches))
    return Reconstruction(current, report, tokens=tokens, examples=len(rows))


def summary(rec: Reconstruction) -> dict[str, Any]:
    """The report's ``reconstruction`` block: per-layer relative errors and their means."""

    def mean(key: str) -> float:
        return sum(r[key] for r in rec.layers) / max(1, len(rec.layers))

    keys = ("attention_error_before", "attention_error_after", "ffn_error_before", "ffn_error_after")
    return {
        "tokens": rec.tokens,
        "examples": rec.examples,
        "bias_correction": {
            "attention": rec.masks.bias_delta_attention is not None,
            "ffn": rec.masks.bias_delta_ffn is not None,
        },
        "mean": {k: mean(k) for k in keys},
        "layers": rec.layers,
    }
