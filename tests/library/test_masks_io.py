"""Masks on disk: the seeds' .pt pair and safetensors, masks made elsewhere, wrong shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from ppruning.arch import get_adapter
from ppruning.errors import MaskShapeError
from ppruning.model.surgery import prune_model
from ppruning.units.masks import Masks, load_masks, save_masks, validate_masks


def some_masks() -> Masks:
    head = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]])
    neuron = (torch.arange(3 * 64).reshape(3, 64) % 3 != 0).float()
    return Masks(head, neuron)


def test_masks_round_trip_in_both_formats(tmp_path: Path) -> None:
    masks = some_masks()
    paths = save_masks(masks, tmp_path / "pt_and_st")
    assert sorted(p.name for p in paths) == ["head_mask.pt", "masks.safetensors", "neuron_mask.pt"]
    from_pt = load_masks(tmp_path / "pt_and_st")
    (tmp_path / "st_only").mkdir()
    (tmp_path / "pt_and_st" / "masks.safetensors").rename(tmp_path / "st_only" / "masks.safetensors")
    from_st = load_masks(tmp_path / "st_only")
    for loaded in (from_pt, from_st):
        assert torch.equal(loaded.head_mask, masks.head_mask) and loaded.head_mask.dtype == torch.float32
        assert torch.equal(loaded.neuron_mask, masks.neuron_mask)


def test_pt_files_are_plain_float_tensors_as_the_seeds_write_them(tmp_path: Path) -> None:
    save_masks(some_masks(), tmp_path)
    head = torch.load(tmp_path / "head_mask.pt", weights_only=True)
    assert isinstance(head, torch.Tensor) and head.dtype == torch.float32 and head.shape == (3, 4)


def test_masks_written_elsewhere_apply(tmp_path: Path, tiny_bert_path: Path) -> None:
    """Another tool's torch.save of float (or 0/1 integer) tensors of the right shape."""
    torch.save(torch.tensor([[1.0, 1, 0, 0]] * 3), tmp_path / "head_mask.pt")
    torch.save(torch.ones(3, 64, dtype=torch.int64), tmp_path / "neuron_mask.pt")
    model = transformers.AutoModel.from_pretrained(tiny_bert_path)
    prune_model(model, load_masks(tmp_path))
    assert [la.num_head_units for la in get_adapter(model).shape().layers] == [2, 2, 2]


@pytest.mark.parametrize(
    ("head_shape", "neuron_shape", "message"),
    [
        ((2, 4), (3, 64), r"head_mask has 2 layers \(dimension 0\) but the model has 3"),
        ((3, 12), (3, 64), r"head_mask has 12 head units per layer \(dimension 1\) but layer 0 of the model has 4"),
        ((3, 4), (3, 3072), r"neuron_mask has 3072 FFN neurons per layer \(dimension 1\) but layer 0 .* has 64"),
        ((3, 4), (4, 64), r"neuron_mask has 4 layers \(dimension 0\)"),
    ],
)
def test_wrong_shapes_fail_naming_the_dimension(
    head_shape: tuple[int, int], neuron_shape: tuple[int, int], message: str, tiny_bert_path: Path
) -> None:
    shape = get_adapter(transformers.AutoModel.from_pretrained(tiny_bert_path)).shape()
    with pytest.raises(MaskShapeError, match=message) as err:
        validate_masks(Masks(torch.ones(head_shape), torch.ones(neuron_shape)), shape)
    assert err.value.field == "masks"


def test_masks_that_are_not_binary_or_not_matrices_are_rejected() -> None:
    with pytest.raises(MaskShapeError, match="only 0"):
        Masks(torch.full((3, 4), 0.5), torch.ones(3, 64))
    with pytest.raises(MaskShapeError, match="2 dimensions"):
        Masks(torch.ones(12), torch.ones(3, 64))


def test_a_folder_without_masks_says_which_files_it_wants(tmp_path: Path) -> None:
    with pytest.raises(MaskShapeError, match="head_mask.pt and neuron_mask.pt, or masks.safetensors"):
        load_masks(tmp_path)
