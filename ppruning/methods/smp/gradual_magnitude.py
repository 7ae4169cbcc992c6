"""``map``: the SMP paper's magnitude-pruning baseline (MaP), gradual and per matrix while fine-tuning.

docs/algorithms.md, SMP, ``map``.

The comparison Jiang et al. (2023) plot, from the movement-pruning code their code is
built on (``pruning_method magnitude``): every pruned matrix (Q, K, V, attention output,
FFN in, FFN out) is used as ``W' = M * W``, M keeping the ``floor(v_t * n)`` largest |W|
of that matrix, recomputed from the current weights at every step, while the weights and
the task head train. v_t follows SMP's cubic schedule (:class:`Schedule`: from 1 to the
target, then held for ``hold_steps``) and the learning rate falls linearly to zero. As in
the reference, no gradient passes through the mask (its entries are constants): a pruned
weight keeps its value and comes back if it outgrows a kept one. At the end the masks of
the final weights at the target are baked in (pruned weights at zero).

The one-shot, global ``magnitude-unstructured`` stays under its own name.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from ppruning.methods.contract import MethodContext
from ppruning.methods.registry import register_method
from ppruning.methods.smp.classifier import classifier_parameters, make_classifier, start_classifier
from ppruning.methods.smp.magnitude import MagnitudeUnstructuredParams
from ppruning.methods.smp.mask_learning import manifest, mask_learning_spec
from ppruning.methods.smp.schedule import Schedule, set_learning_rates, total_steps
from ppruning.methods.smp.scores import density_table, prunable_linears, topk_mask
from ppruning.methods.smp.training import train_in_context
from ppruning.units.weight_masks import WeightMasks


class MaPParams(MagnitudeUnstructuredParams):
    learning_rate: float = Field(
        default=3e-5, gt=0.0, le=10.0, description="AdamW learning rate of the weights (movement pruning's MaP)."
    )
    warmup_fraction: float = Field(default=0.0, ge=0.0, lt=1.0, description="Steps at v = 1 before the ramp.")
    hold_steps: int = Field(
        default=30_000, ge=0, le=10_000_000, description="Final steps at the target (at most half the run), as SMP's."
    )
    lr_schedule: Literal["linear", "constant"] = Field(
        default="linear", description="'linear': the learning rates fall linearly to zero over the run."
    )


class MagnitudeMask(nn.Module):
    """Parametrisation ``weight -> M(|weight|, keep) * weight``, M constant (no gradient through it)."""

    def __init__(self) -> None:
        super().__init__()
        self.keep = 1.0
        self.density = 1.0  # of the mask the last forward pass used

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mask = topk_mask(weight.detach().abs(), self.keep)
        self.density = float(mask.sum()) / mask.numel()
        return mask.to(weight.dtype) * weight


def gradual_magnitude(ctx: MethodContext) -> WeightMasks:
    params: MaPParams = ctx.params
    assert ctx.examples is not None and ctx.target is not None
    model, device = ctx.model, next(ctx.model.parameters()).device
    classifier, words = make_classifier(ctx, params)
    ctx.details["head_start"] = start_classifier(ctx, params, device)
    linears = prunable_linears(model)
    masks_of = []
    for lin in linears:
        mask = MagnitudeMask()
        parametrize.register_parametrization(lin.module, "weight", mask)
        masks_of.append(mask)
    outside = {id(p) for p in classifier_parameters(model)}  # the classifier (or the MLM head)
    for p in model.parameters():
        p.requires_grad_(True)
    encoder = [p for p in model.parameters() if id(p) not in outside]
    groups: list[dict[str, Any]] = [{"params": encoder, "lr": params.learning_rate}]
    if outside:
        lr = params.head_learning_rate if params.head == "new" else params.learning_rate
        groups.append({"params": [p for p in model.parameters() if id(p) in outside], "lr": lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=params.weight_decay)
    base_lrs = [g["lr"] for g in groups]
    final = 1.0 - ctx.target.value
    schedule = Schedule.for_run(
        total_steps(params, len(ctx.examples)), params.warmup_fraction, params.hold_steps, params.lr_schedule
    )
    model.train()

    def step_fn(step: int, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        keep = schedule.keep(step, final)
        for mask in masks_of:
            mask.keep = keep
        set_learning_rates(optimizer, base_lrs, schedule.lr_factor(step))
        loss = F.cross_entropy(classifier(batch), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        set_learning_rates(optimizer, base_lrs, schedule.lr_factor(step + 1))
        densities = [m.density for m in masks_of]
        return float(loss.detach()), {"keep": keep, "density_min": min(densities), "density_max": max(densities)}

    def state() -> dict[str, Any]:
        return {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "optimizer": optimizer.state_dict()}

    def restore(saved: dict[str, Any]) -> None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])

    run = train_in_context(
        ctx, params, stage="finetune", device=device, step_fn=step_fn, state=state, restore=restore,
        steps=schedule.total,
    )  # fmt: skip
    ctx.progress.start_stage("select", total=1)
    masks = OrderedDict()
    with torch.no_grad():
        for lin, mask in zip(linears, masks_of, strict=True):
            mask.keep = final
            masks[lin.name] = topk_mask(lin.module.parametrizations.weight.original.abs(), final)
            parametrize.remove_parametrizations(lin.module, "weight", leave_parametrized=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.details["density"] = density_table(masks, linears)
    ctx.details["training"] = run
    ctx.details["schedule"] = schedule.summary()
    ctx.progress.update(1)
    return WeightMasks(masks, model, manifest=manifest(params, words, ctx.label_names))


SPEC = register_method(
    mask_learning_spec(
        "map",
        "Baseline of SMP as its paper runs it (MaP): gradual magnitude pruning of each matrix on SMP's cubic "
        "schedule while the weights and the task head fine-tune.",
        MaPParams,
        gradual_magnitude,
        ("finetune", "select"),
    )
)
