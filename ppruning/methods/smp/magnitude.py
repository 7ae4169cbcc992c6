"""A one-shot unstructured baseline: global magnitude pruning, then fine-tuning with the masks fixed.

docs/algorithms.md, SMP, ``magnitude-unstructured``. (The SMP paper's own baseline, MaP,
is gradual and per matrix: ``map``, :mod:`ppruning.methods.smp.gradual_magnitude`.)

The same matrices as SMP (Q, K, V, attention
output, FFN in, FFN out), one global threshold on |W| over all of them at the same
remaining fraction, then the same number of steps of training the weights and the task
head (the MLM head at the label words, or a new classifier) with the pruned weights held
at zero. Heads, label words, steps, batch size and resuming are SMP's.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from ppruning.methods.contract import MethodContext
from ppruning.methods.registry import register_method
from ppruning.methods.smp.classifier import classifier_parameters, make_classifier, start_classifier
from ppruning.methods.smp.mask_learning import manifest, mask_learning_spec
from ppruning.methods.smp.params import ClassifierParams
from ppruning.methods.smp.scores import density_table, prunable_linears, topk_mask
from ppruning.methods.smp.training import train_in_context
from ppruning.units.weight_masks import WeightMasks, keep_masked_weights_zero


class MagnitudeUnstructuredParams(ClassifierParams):
    learning_rate: float = Field(default=2e-5, gt=0.0, le=10.0, description="AdamW learning rate of the weights.")
    head_learning_rate: float = Field(
        default=1e-3, gt=0.0, le=10.0, description="AdamW learning rate of a new classifier (head 'new')."
    )
    weight_decay: float = Field(default=0.01, ge=0.0, le=1.0)


def global_magnitude_masks(weights: list[torch.Tensor], keep: float) -> list[torch.Tensor]:
    """One threshold over every matrix: the ``floor(keep * total)`` largest |w| are kept."""
    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights])
    kept = topk_mask(flat, keep)
    out, start = [], 0
    for w in weights:
        out.append(kept[start : start + w.numel()].reshape(w.shape))
        start += w.numel()
    return out


def magnitude_then_finetune(ctx: MethodContext) -> WeightMasks:
    params: MagnitudeUnstructuredParams = ctx.params
    assert ctx.examples is not None and ctx.target is not None
    model, device = ctx.model, next(ctx.model.parameters()).device
    classifier, words = make_classifier(ctx, params)
    ctx.details["head_start"] = start_classifier(ctx, params, device)
    linears = prunable_linears(model)
    ctx.progress.start_stage("select", total=1)
    chosen = global_magnitude_masks([lin.module.weight for lin in linears], 1 - ctx.target.value)
    masks = OrderedDict((lin.name, m) for lin, m in zip(linears, chosen, strict=True))
    hooks = keep_masked_weights_zero(model, masks)
    ctx.progress.update(1)
    outside = classifier_parameters(model)  # the classifier (or the MLM head) beside the encoder
    encoder = [p for p in model.parameters() if id(p) not in {id(q) for q in outside}]
    for p in model.parameters():
        p.requires_grad_(True)
    groups: list[dict[str, Any]] = [{"params": encoder, "lr": params.learning_rate}]
    if outside:
        lr = params.head_learning_rate if params.head == "new" else params.learning_rate
        groups.append({"params": outside, "lr": lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=params.weight_decay)
    model.train()

    def step_fn(step: int, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        loss = F.cross_entropy(classifier(batch), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach()), {"keep": 1 - ctx.target.value}

    def state() -> dict[str, Any]:
        return {"model": {k: v.cpu() for k, v in model.state_dict().items()}, "optimizer": optimizer.state_dict()}

    def restore(saved: dict[str, Any]) -> None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])

    run = train_in_context(ctx, params, stage="finetune", device=device, step_fn=step_fn, state=state, restore=restore)
    for handle in hooks:
        handle.remove()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.details["density"] = density_table(masks, linears)
    ctx.details["training"] = run
    return WeightMasks(masks, model, manifest=manifest(params, words, ctx.label_names))


SPEC = register_method(
    mask_learning_spec(
        "magnitude-unstructured",
        "One-shot baseline: global magnitude pruning of the same matrices, then the same number of "
        "fine-tuning steps of the weights and the task head with the masks fixed.",
        MagnitudeUnstructuredParams,
        magnitude_then_finetune,
        ("select", "finetune"),
    )
)
