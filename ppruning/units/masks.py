"""Unit masks: what a method decides, in the seeds' file format.

``head_mask`` is float [layers, head_units] and ``neuron_mask`` float [layers, d_ffn],
1 = kept, 0 = pruned. On disk: ``head_mask.pt`` and ``neuron_mask.pt`` (a plain
``torch.save`` of each tensor, as the reference code writes them) and the same pair in
``masks.safetensors``. Masks made by other tools load as long as the shapes match.

Reconstruction (:mod:`ppruning.recovery.reconstruct`) adds per-unit output scales and a bias
correction of the output projections; they travel in ``masks.safetensors`` next to the
masks (``head_scale`` [layers, head_units], ``neuron_scale`` [layers, d_ffn], 0 where
pruned; ``bias_delta_attention`` and ``bias_delta_ffn`` [layers, hidden]), so masks plus
scales reproduce the pruned checkpoint. The ``.pt`` pair stays masks only.
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


#: Optional tensors of masks.safetensors that reconstruction adds (see the module docstring).
SCALE_KEYS = ("head_scale", "neuron_scale", "bias_delta_attention", "bias_delta_ffn")


@dataclass
class Masks:
    head_mask: torch.Tensor  # float [layers, head_units], 1 = kept
    neuron_mask: torch.Tensor  # float [layers, d_ffn], 1 = kept
    #: Reconstruction's output scale per kept head unit / neuron (0 where pruned); None: no scaling.
    head_scale: torch.Tensor | None = None
    neuron_scale: torch.Tensor | None = None
    #: Added to the bias of the attention / FFN output projection, [layers, hidden]; None: nothing.
    bias_delta_attention: torch.Tensor | None = None
    bias_delta_ffn: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.head_mask = _as_float_mask(self.head_mask, "head_mask")
        self.neuron_mask = _as_float_mask(self.neuron_mask, "neuron_mask")
        for name, like in (("head_scale", self.head_mask), ("neuron_scale", self.neuron_mask)):
            value = getattr(self, name)
            if value is not None:
                value = _as_float(value, name)
                if value.shape != like.shape:
                    raise MaskShapeError(
                        f"{name} has shape {list(value.shape)}, its mask {list(like.shape)}", field="masks"
                    )
                setattr(self, name, value)
        for name in ("bias_delta_attention", "bias_delta_ffn"):
            value = getattr(self, name)
            if value is not None:
                value = _as_float(value, name)
                if value.dim() != 2 or value.shape[0] != self.head_mask.shape[0]:
                    raise MaskShapeError(f"{name} must be [layers, hidden], got {list(value.shape)}", field="masks")
                setattr(self, name, value)

    @property
    def has_scales(self) -> bool:
        """True when reconstruction's scales or bias corrections come with the masks."""
        return any(getattr(self, k) is not None for k in SCALE_KEYS)

    def scale_tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in SCALE_KEYS if getattr(self, k) is not None}

    def head_columns(self, layer: int, width: int) -> torch.Tensor:
        """Per input column of the attention output projection: the mask, times the scale if any."""
        per_unit = self.head_mask[layer] if self.head_scale is None else self.head_scale[layer] * self.head_mask[layer]
        return per_unit.repeat_interleave(width)

    def neuron_columns(self, layer: int) -> torch.Tensor:
        """Per input column of the FFN down projection: the mask, times the scale if any."""
        if self.neuron_scale is None:
            return self.neuron_mask[layer]
        return self.neuron_scale[layer] * self.neuron_mask[layer]

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


def _as_float(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise MaskShapeError(f"{name} must be a tensor, got {type(t).__name__}", field="masks")
    t = t.detach().to("cpu", torch.float32).contiguous()
    if not torch.isfinite(t).all():
        raise MaskShapeError(f"{name} holds non-finite values", field="masks")
    return t


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
    tensors = {"head_mask": masks.head_mask, "neuron_mask": masks.neuron_mask, **masks.scale_tensors()}
    save_file(tensors, str(paths[2]))
    return paths


def load_masks(directory: Path) -> Masks:
    """Read masks from a folder: the ``.pt`` pair if present, else ``masks.safetensors``.

    Reconstruction's scales are read from ``masks.safetensors`` whenever it holds them
    and its masks agree with the ``.pt`` pair (a ``.pt`` pair edited by hand wins, unscaled).
    """
    directory = Path(directory)
    head_pt, neuron_pt = directory / HEAD_MASK_FILE, directory / NEURON_MASK_FILE
    st = directory / SAFETENSORS_FILE
    if head_pt.is_file() and neuron_pt.is_file():
        try:
            head = torch.load(head_pt, map_location="cpu", weights_only=True)
            neuron = torch.load(neuron_pt, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise MaskShapeError(f"cannot read masks in {directory}: {exc}", field="masks") from exc
        masks = Masks(head, neuron)
        if st.is_file():
            scales = _read_safetensors(st)
            if torch.equal(scales.head_mask, masks.head_mask) and torch.equal(scales.neuron_mask, masks.neuron_mask):
                return scales
        return masks
    if st.is_file():
        return _read_safetensors(st)
    raise MaskShapeError(
        f"no masks in {directory}: expected {HEAD_MASK_FILE} and {NEURON_MASK_FILE}, or {SAFETENSORS_FILE}",
        field="masks",
    )


def _read_safetensors(st: Path) -> Masks:
    from safetensors.torch import load_file

    tensors = load_file(str(st))
    missing = {"head_mask", "neuron_mask"} - set(tensors)
    if missing:
        raise MaskShapeError(f"{st} lacks tensor(s) {sorted(missing)}", field="masks")
    extra = {k: tensors[k] for k in SCALE_KEYS if k in tensors}
    return Masks(tensors["head_mask"], tensors["neuron_mask"], **extra)
