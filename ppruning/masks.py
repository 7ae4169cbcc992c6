"""Unit masks: what a method decides, in the seeds' file format.

``head_mask`` is float [layers, head_units] and ``neuron_mask`` float [layers, d_ffn],
1 = kept, 0 = pruned. On disk: ``head_mask.pt`` and ``neuron_mask.pt`` (a plain
``torch.save`` of each tensor, as the reference code writes them) and the same pair in
``masks.safetensors``. Masks made by other tools load as long as the shapes match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ppruning.arch.base import ModelShape
from ppruning.errors import MaskShapeError

HEAD_MASK_FILE = "head_mask.pt"
NEURON_MASK_FILE = "neuron_mask.pt"
SAFETENSORS_FILE = "masks.safetensors"


@dataclass
class Masks:
    head_mask: torch.Tensor  # float [layers, head_units], 1 = kept
    neuron_mask: torch.Tensor  # float [layers, d_ffn], 1 = kept

    def __post_init__(self) -> None:
        self.head_mask = _as_float_mask(self.head_mask, "head_mask")
        self.neuron_mask = _as_float_mask(self.neuron_mask, "neuron_mask")

    @classmethod
    def full(cls, shape: ModelShape) -> Masks:
        """Keep everything (requires a uniform shape, i.e. an unpruned model)."""
        first = shape.layers[0]
        return cls(
            torch.ones(shape.num_layers, first.num_head_units),
            torch.ones(shape.num_layers, first.ffn_size),
        )

    @property
    def num_layers(self) -> int:
        return int(self.head_mask.shape[0])

    def kept_head_units(self, layer: int) -> list[int]:
        return torch.nonzero(self.head_mask[layer] > 0.5).flatten().tolist()

    def kept_neurons(self, layer: int) -> list[int]:
        return torch.nonzero(self.neuron_mask[layer] > 0.5).flatten().tolist()

    def head_counts(self) -> list[int]:
        return (self.head_mask > 0.5).sum(dim=1).tolist()

    def neuron_counts(self) -> list[int]:
        return (self.neuron_mask > 0.5).sum(dim=1).tolist()


def _as_float_mask(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise MaskShapeError(f"{name} must be a tensor, got {type(t).__name__}", field="masks")
    if t.dim() != 2:
        raise MaskShapeError(f"{name} must have 2 dimensions [layers, units], got shape {list(t.shape)}", field="masks")
    t = t.detach().to("cpu", torch.float32)
    if not torch.all((t == 0) | (t == 1)):
        raise MaskShapeError(f"{name} must hold only 0 (pruned) and 1 (kept)", field="masks")
    return t.contiguous()


def validate_masks(masks: Masks, shape: ModelShape, *, allow_empty_layers: bool = False) -> None:
    """Check masks against a model's shape; MaskShapeError names the mismatched dimension.

    Every layer must keep at least one head unit and one neuron (a layer with none
    cannot be materialised) unless ``allow_empty_layers`` (masking alone is fine with it).
    """
    for name, mask, what in (("head_mask", masks.head_mask, "head units"), ("neuron_mask", masks.neuron_mask, "FFN")):
        if mask.shape[0] != shape.num_layers:
            raise MaskShapeError(
                f"{name} has {mask.shape[0]} layers (dimension 0) but the model has {shape.num_layers}",
                field="masks",
            )
        for i, layer in enumerate(shape.layers):
            want = layer.num_head_units if name == "head_mask" else layer.ffn_size
            if mask.shape[1] != want:
                unit = "head units per layer" if name == "head_mask" else "FFN neurons per layer"
                raise MaskShapeError(
                    f"{name} has {mask.shape[1]} {unit} (dimension 1) but layer {i} of the model has {want} {what}",
                    field="masks",
                )
    if allow_empty_layers:
        return
    for name, counts in (("head_mask", masks.head_counts()), ("neuron_mask", masks.neuron_counts())):
        empty = [i for i, c in enumerate(counts) if c == 0]
        if empty:
            raise MaskShapeError(
                f"{name} keeps nothing in layer(s) {empty}; every layer must keep at least one unit",
                field="masks",
            )


def save_masks(masks: Masks, directory: Path) -> list[Path]:
    """Write ``head_mask.pt``, ``neuron_mask.pt`` and ``masks.safetensors``; returns the paths."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / HEAD_MASK_FILE, directory / NEURON_MASK_FILE, directory / SAFETENSORS_FILE]
    torch.save(masks.head_mask.clone(), paths[0])
    torch.save(masks.neuron_mask.clone(), paths[1])
    save_file({"head_mask": masks.head_mask, "neuron_mask": masks.neuron_mask}, str(paths[2]))
    return paths


def load_masks(directory: Path) -> Masks:
    """Read masks from a folder: the ``.pt`` pair if present, else ``masks.safetensors``."""
    directory = Path(directory)
    head_pt, neuron_pt = directory / HEAD_MASK_FILE, directory / NEURON_MASK_FILE
    if head_pt.is_file() and neuron_pt.is_file():
        try:
            head = torch.load(head_pt, map_location="cpu", weights_only=True)
            neuron = torch.load(neuron_pt, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise MaskShapeError(f"cannot read masks in {directory}: {exc}", field="masks") from exc
        return Masks(head, neuron)
    st = directory / SAFETENSORS_FILE
    if st.is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(st))
        missing = {"head_mask", "neuron_mask"} - set(tensors)
        if missing:
            raise MaskShapeError(f"{st} lacks tensor(s) {sorted(missing)}", field="masks")
        return Masks(tensors["head_mask"], tensors["neuron_mask"])
    raise MaskShapeError(
        f"no masks in {directory}: expected {HEAD_MASK_FILE} and {NEURON_MASK_FILE}, or {SAFETENSORS_FILE}",
        field="masks",
    )
