"""The ``random`` baseline: seeded random units, with the same budget machinery as every method.

docs/algorithms.md, baselines.

It removes the same cost split 1 : lambda_val as P-pruning, keeps at least one unit per
layer and goes through the same materialisation, so every comparison is like for like:
per layer a uniformly random choice of units, at *uniform* counts (as even as the budget
allows over the layers, no data needed) or at the per-layer counts *P-pruning* would keep
(``allocation="ppruning"``: runs the registered ``ppruning`` method with these clustering
parameters for its counts, then ignores which units it chose). Only P-pruning's parameter
declaration is imported; the method itself is reached through the registry, as any caller
reaches it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from ppruning.methods.contract import MethodContext, MethodSpec
from ppruning.methods.ppruning.params import ClusteringParams
from ppruning.methods.registry import get_method, register_method
from ppruning.progress import Progress
from ppruning.units.budget import uniform_removal
from ppruning.units.masks import Masks
from ppruning.units.select import keep_mask, random_k


class RandomParams(ClusteringParams):
    """``allocation="ppruning"`` finds the counts with P-pruning's clustering; ``uniform`` needs only lambda_val."""

    allocation: Literal["uniform", "ppruning"] = Field(
        default="uniform", description="Per-layer counts: as even as possible, or those P-pruning would keep."
    )

    @model_validator(mode="before")
    @classmethod
    def _counts_is_allocation(cls, data: Any) -> Any:
        """Older specs named the field ``counts``."""
        if isinstance(data, dict) and "counts" in data:
            data = dict(data)
            counts = data.pop("counts")
            if data.setdefault("allocation", counts) != counts:
                raise ValueError("give 'allocation' only ('counts' is its older name)")
        return data


def _random_uses_data(params: RandomParams) -> bool:
    return params.allocation == "ppruning"


def _random_stages(params: RandomParams) -> tuple[str, ...]:
    return ("collect", "cluster", "select") if _random_uses_data(params) else ("select",)


class _QuietFrom(Progress):
    """Forwards to ``inner`` until the stage ``stage`` starts, then stays silent (that stage is the caller's)."""

    def __init__(self, inner: Progress, stage: str) -> None:
        self.inner, self.stage, self.quiet = inner, stage, False

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        self.quiet = self.quiet or stage == self.stage
        if not self.quiet:
            self.inner.start_stage(stage, total, message)

    def update(self, step: int, total: int | None = None, **metrics: Any) -> None:
        if not self.quiet:
            self.inner.update(step, total, **metrics)

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        self.inner.event(message, level, **data)

    def checkpoint(self) -> None:
        self.inner.checkpoint()


def ppruning_removal(ctx: MethodContext, params: RandomParams) -> tuple[np.ndarray, np.ndarray]:
    """Units removed per layer by P-pruning (global allocation) with these clustering parameters.

    P-pruning runs through the registry on the same context: its stages collect and cluster
    are reported and its details recorded; its own choice of units is not (the ``select``
    stage is this method's), only its per-layer counts are kept.
    """
    method = get_method("ppruning")
    clustering = params.model_dump(exclude={"allocation"})
    settings = method.params_model.model_validate({**clustering, "allocation": "global"})
    masks = method.run(replace(ctx, params=settings, progress=_QuietFrom(ctx.progress, "select")))
    heads = np.asarray([la.num_head_units for la in ctx.shape.layers]) - np.asarray(masks.head_counts())
    neurons = np.asarray([la.ffn_size for la in ctx.shape.layers]) - np.asarray(masks.neuron_counts())
    return heads, neurons


def random_masks(ctx: MethodContext) -> Masks:
    params: RandomParams = ctx.params
    if params.allocation == "ppruning":
        removed_heads, removed_neurons = ppruning_removal(ctx, params)
    else:
        removed_heads, removed_neurons = uniform_removal(ctx.budget, ctx.shape)
    generator = torch.Generator().manual_seed(ctx.seed)
    ctx.progress.start_stage("select", total=ctx.shape.num_layers)
    head_rows, neuron_rows = [], []
    for i, la in enumerate(ctx.shape.layers):
        n_h, n_f = la.num_head_units, la.ffn_size
        head_rows.append(keep_mask(n_h, random_k(n_h, n_h - int(removed_heads[i]), generator)))
        neuron_rows.append(keep_mask(n_f, random_k(n_f, n_f - int(removed_neurons[i]), generator)))
        ctx.progress.update(i + 1)
    return Masks(torch.stack(head_rows), torch.stack(neuron_rows))


RANDOM = register_method(
    MethodSpec(
        name="random",
        summary="Baseline: seeded random heads and neurons per layer, at uniform counts or at P-pruning's counts.",
        kind="structured",
        needs="weights",
        params_model=RandomParams,
        run=random_masks,
        stages_for=_random_stages,
        reads_data_for=_random_uses_data,
        version="2",  # allocation="ppruning": dead units go first by default
    )
)
