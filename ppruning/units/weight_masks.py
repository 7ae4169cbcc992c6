"""Unstructured weight masks: one boolean mask per pruned weight matrix, with an explicit manifest.

What an unstructured method (SMP, global magnitude) decides. On disk:

- ``weight_masks.safetensors``: per matrix, its mask flattened in row-major order and
  packed eight weights to a byte (``numpy.packbits``, big-endian bit order, 1 = kept);
- ``weight_masks.json``: the manifest that makes the bits readable without guessing:
  format version, the parameter names in order, each one's shape, kept count and
  density, the base model (id and revision) and the method's facts (label words, head).

The reference implementation stored the masks in an implicit name order with
BERT-base shapes hard-coded; here a mask file applied to a model whose parameter names
or shapes differ is refused with the first mismatch named.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.errors import MaskShapeError

MASKS_FILE = "weight_masks.safetensors"
MANIFEST_FILE = "weight_masks.json"
FORMAT = "ppruning-weight-masks"
FORMAT_VERSION = 1


@dataclass
class WeightMasks:
    """Per parameter name (``bert.encoder.layer.0.attention.self.query.weight``), a bool mask, 1 = kept.

    ``model`` is the model the method leaves behind with the masks already applied (the
    pruned weights are zero), so the prune run writes it as the dense checkpoint.
    ``manifest`` holds what the method wants recorded beside the masks (label words, head).
    """

    masks: OrderedDict[str, torch.Tensor]
    model: nn.Module | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.masks = OrderedDict((name, m.detach().to("cpu", torch.bool)) for name, m in self.masks.items())

    def kept(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def total(self) -> int:
        return int(sum(m.numel() for m in self.masks.values()))

    def density(self) -> float:
        return self.kept() / max(1, self.total())

    def entries(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "shape": list(m.shape),
                "kept": int(m.sum()),
                "density": round(float(m.float().mean()), 6),
            }
            for name, m in self.masks.items()
        ]


def pack(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.numpy().reshape(-1).astype(np.uint8)))


def unpack(packed: torch.Tensor, shape: list[int]) -> torch.Tensor:
    n = int(np.prod(shape)) if shape else 1
    bits = np.unpackbits(packed.numpy().astype(np.uint8))[:n]
    return torch.from_numpy(bits.astype(bool)).reshape(shape)


def save_weight_masks(
    result: WeightMasks, folder: Path, *, base_model: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the packed masks and the manifest into ``folder``; the manifest is returned."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: pack(m) for name, m in result.masks.items()}, str(folder / MASKS_FILE))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "packing": "numpy.packbits of the row-major flattened mask, big-endian bits, 1 = kept",
        "base_model": base_model,
        "order": list(result.masks),
        "matrices": result.entries(),
        "kept": result.kept(),
        "total": result.total(),
        "density": round(result.density(), 6),
        **result.manifest,
        **(extra or {}),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_weight_masks(folder: Path) -> tuple[OrderedDict[str, torch.Tensor], dict[str, Any]]:
    """(masks in manifest order, manifest); MaskShapeError when the two files disagree."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        packed = load_file(str(folder / MASKS_FILE))
    except (OSError, ValueError) as exc:
        raise MaskShapeError(f"cannot read weight masks in {folder}: {exc}", field="masks") from exc
    if manifest.get("format") != FORMAT:
        raise MaskShapeError(f"{folder / MANIFEST_FILE} is not a weight-mask manifest", field="masks")
    masks: OrderedDict[str, torch.Tensor] = OrderedDict()
    for entry in manifest["matrices"]:
        name = entry["name"]
        if name not in packed:
            raise MaskShapeError(f"the manifest lists {name!r} but {MASKS_FILE} has no such mask", field="masks")
        masks[name] = unpack(packed[name], entry["shape"])
        if int(masks[name].sum()) != entry["kept"]:
            raise MaskShapeError(f"mask {name!r} keeps {int(masks[name].sum())}, the manifest says {entry['kept']}")
    return masks, manifest


def check_against(masks: OrderedDict[str, torch.Tensor], model: nn.Module) -> None:
    """Every mask names a parameter of ``model`` of the same shape; else MaskShapeError naming it."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise MaskShapeError(f"the model has no parameter {name!r} (masks made for another model?)", field="masks")
        if list(params[name].shape) != list(mask.shape):
            raise MaskShapeError(
                f"mask {name!r} has shape {list(mask.shape)} but the model's parameter is {list(params[name].shape)}",
                field="masks",
            )


@torch.no_grad()
def apply_weight_masks(model: nn.Module, masks: OrderedDict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (after :func:`check_against`)."""
    check_against(masks, model)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].device, params[name].dtype))


def keep_masked_weights_zero(model: nn.Module, masks: OrderedDict[str, torch.Tensor]) -> list[Any]:
    """Gradient hooks that zero the gradient of pruned weights, so training keeps them at zero.

    With weight decay AdamW still moves a zero weight by nothing (decay of 0 is 0), and a
    zero gradient gives a zero update; the hooks are returned so a caller can remove them.
    """
    apply_weight_masks(model, masks)
    params = dict(model.named_parameters())
    handles = []
    for name, mask in masks.items():
        m = mask.to(params[name].device, params[name].dtype)
        handles.append(params[name].register_hook(lambda grad, m=m: grad * m))
    return handles
