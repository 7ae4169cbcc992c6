"""The mathematics of SMP (Jiang et al., ACL 2023): top-k masks on learned scores, ramps, SMP-S budgets.

- :class:`TopKMask`: the mask keeping the largest ``floor(v * n)`` scores; the backward
  pass is straight through, so with ``W' = M * W`` the score gradient is ``dL/dW' * W``.
- :func:`keep_fraction_at` and :func:`lambda_at`: the cubic ramp of the keep fraction
  from 1 to the target, and of the regulariser's weight from 0 to its final value; both
  hold after their ramp (:mod:`ppruning.methods.smp.schedule` sets the ramps of a run).
- :func:`allocate_keep`: SMP-S's per-layer keep fractions of one matrix type from the
  scores' mean sigmoid, clamped to 1 with the excess given to the unclamped layers in
  proportion (the reference does not clamp, so a layer could be asked to keep more than
  all of its weights and the total would fall short of the target).
- :class:`ScoredWeight`: the parametrisation ``weight -> TopK(S, v) * weight`` put on each
  pruned ``nn.Linear``; the pre-trained weight stays frozen underneath.
- :func:`prunable_linears`: the six matrices per layer (Q, K, V, attention output, FFN in,
  FFN out), where the family's adapter says they are (``block_matrices``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ppruning.arch import get_adapter
from ppruning.arch.base import ArchAdapter
from ppruning.errors import UnsupportedModelError

#: Matrix types, in the order every per-layer listing uses.
MATRIX_TYPES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")


def supports(adapter: type[ArchAdapter]) -> bool:
    """The families SMP runs on: six separate matrices per block and a masked-LM head the adapter reads."""
    return adapter.reads_mlm_head and adapter.block_matrices() is not None


class TopKMask(torch.autograd.Function):
    """Forward: 1 on the ``floor(v * n)`` largest scores, else 0. Backward: the gradient unchanged."""

    @staticmethod
    def forward(ctx: object, scores: torch.Tensor, keep: float) -> torch.Tensor:  # type: ignore[override]
        return topk_mask(scores, keep).to(scores.dtype)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def topk_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """Bool mask of the ``floor(keep * n)`` largest entries (ties broken by position, deterministic)."""
    flat = scores.detach().reshape(-1)
    k = int(math.floor(keep * flat.numel() + 1e-9))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k >= flat.numel():
        mask[:] = True
    elif k > 0:
        mask[torch.topk(flat, k, sorted=False).indices] = True
    return mask.reshape(scores.shape)


@dataclass(frozen=True)
class Ramp:
    """Steps ``[0, warmup)`` at the start, a cubic ramp over ``ramp`` steps, then the final value held."""

    warmup: int
    ramp: int

    def progress(self, step: int) -> float:
        """0 before and at the ramp's start, 1 at its end and after."""
        if self.ramp <= 0:
            return 1.0 if step >= self.warmup else 0.0
        return min(1.0, max(0.0, (step - self.warmup) / self.ramp))


def keep_fraction_at(step: int, final: float, ramp: Ramp) -> float:
    """``final + (1 - final) * (1 - p)^3``: 1 at the ramp's start, ``final`` at its end."""
    p = ramp.progress(step)
    return final + (1.0 - final) * (1.0 - p) ** 3


def lambda_at(step: int, final: float, ramp: Ramp) -> float:
    """``final * (1 - (1 - p)^3)``: 0 at the ramp's start, ``final`` at its end, in step with the keep fraction."""
    p = ramp.progress(step)
    return final * (1.0 - (1.0 - p) ** 3)


def allocate_keep(keep: float, weights: Sequence[float]) -> list[float]:
    """SMP-S: layer l keeps ``keep * L * w_l / sum(w)``, at most 1, the excess spread over the rest.

    ``weights`` are the layers' ``mean(sigmoid(S_l / p))`` for one matrix type (all its
    matrices have the same size, so equal fractions are equal counts). The returned
    fractions average to ``keep`` and none passes 1.
    """
    n = len(weights)
    w = [max(float(x), 1e-12) for x in weights]
    out = [0.0] * n
    free = list(range(n))
    budget = keep * n
    while free:
        total = sum(w[i] for i in free)
        share = {i: budget * w[i] / total for i in free}
        over = [i for i in free if share[i] > 1.0]
        if not over:
            for i in free:
                out[i] = share[i]
            break
        for i in over:
            out[i] = 1.0
            budget -= 1.0
            free.remove(i)
    return out


class ScoredWeight(nn.Module):
    """Parametrisation of a frozen weight: ``TopK(S, keep) * W``; only ``S`` learns."""

    def __init__(self, shape: torch.Size, init: float, device: torch.device | None = None) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.full(shape, float(init), device=device))
        self.keep = 1.0

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return TopKMask.apply(self.scores, self.keep) * weight

    def mask(self) -> torch.Tensor:
        return topk_mask(self.scores, self.keep)


@dataclass(frozen=True)
class PrunableLinear:
    name: str  # the weight's parameter name in the model
    layer: int
    kind: str  # one of MATRIX_TYPES
    module: nn.Linear


def prunable_linears(model: nn.Module) -> list[PrunableLinear]:
    """Q, K, V, attention output, FFN in and FFN out of every layer, in layer then type order."""
    adapter = get_adapter(model)
    paths = adapter.block_matrices()
    if paths is None:
        raise UnsupportedModelError(
            f"unstructured pruning needs six separate matrices per block; model type {model.config.model_type!r} "
            "fuses or gates them",
            field="model.id",
        )
    names = {module: name for name, module in model.named_modules()}
    out = []
    for i, block in enumerate(adapter.layers()):
        for kind in MATRIX_TYPES:
            module = block.get_submodule(paths[kind])
            out.append(PrunableLinear(f"{names[module]}.weight", i, kind, module))
    return out


def density_table(masks: OrderedDict[str, torch.Tensor], linears: Sequence[PrunableLinear]) -> dict[str, object]:
    """Density per matrix, per layer (all six together) and per matrix type: the report's view."""
    by_layer: dict[int, list[int]] = {}
    by_kind: dict[str, list[int]] = {}
    per_matrix = []
    for lin in linears:
        m = masks[lin.name]
        kept, n = int(m.sum()), m.numel()
        per_matrix.append({"name": lin.name, "layer": lin.layer, "type": lin.kind, "density": round(kept / n, 6)})
        for table, key in ((by_layer, lin.layer), (by_kind, lin.kind)):
            acc = table.setdefault(key, [0, 0])  # type: ignore[arg-type]
            acc[0] += kept
            acc[1] += n
    return {
        "per_matrix": per_matrix,
        "per_layer": [round(k / n, 6) for _, (k, n) in sorted(by_layer.items())],
        "per_type": {kind: round(k / n, 6) for kind, (k, n) in by_kind.items()},
    }


class Scores:
    """The score parametrisations of every prunable matrix and how their keep fractions are set."""

    def __init__(
        self, linears: list[PrunableLinear], init: float, variant: str, temperature: float, start: str = "constant"
    ) -> None:
        self.linears, self.variant, self.temperature = linears, variant, temperature
        self.params: list[ScoredWeight] = []
        for lin in linears:
            lin.module.weight.requires_grad_(False)
            scored = ScoredWeight(lin.module.weight.shape, init, lin.module.weight.device)
            if start == "magnitude":
                with torch.no_grad():
                    magnitude = lin.module.weight.abs()
                    scored.scores.add_(magnitude / magnitude.mean().clamp_min(1e-12))
            parametrize.register_parametrization(lin.module, "weight", scored)
            self.params.append(scored)

    def set_keep(self, keep: float) -> dict[str, list[float]]:
        """Every matrix's keep fraction for overall ``keep``; per type, the layers' fractions."""
        by_type: dict[str, list[ScoredWeight]] = {kind: [] for kind in MATRIX_TYPES}
        for lin, scored in zip(self.linears, self.params, strict=True):
            by_type[lin.kind].append(scored)
        shares = {}
        for kind, group in by_type.items():
            if self.variant == "smp-l":
                fractions = [keep] * len(group)
            else:
                with torch.no_grad():
                    weights = [float(torch.sigmoid(s.scores / self.temperature).mean()) for s in group]
                fractions = allocate_keep(keep, weights)
            for scored, fraction in zip(group, fractions, strict=True):
                scored.keep = fraction
            shares[kind] = [round(f, 6) for f in fractions]
        return shares

    def regulariser(self) -> torch.Tensor:
        """The mean over pruned matrices of each matrix's mean sigmoid of its scores (the authors').

        Averaging per matrix, not over all elements together, gives every matrix the same
        weight: a BERT FFN matrix (4x the elements of Q) does not pull four times as hard.
        """
        return torch.stack([torch.sigmoid(s.scores).mean() for s in self.params]).mean()

    def bake(self) -> OrderedDict[str, torch.Tensor]:
        """Final masks; the parametrisations removed with ``W' = M * W`` left in the weights."""
        masks = OrderedDict((lin.name, s.mask()) for lin, s in zip(self.linears, self.params, strict=True))
        for lin in self.linears:
            parametrize.remove_parametrizations(lin.module, "weight", leave_parametrized=True)
        return masks
