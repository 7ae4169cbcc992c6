"""Surgery really removes parameters, exactly as the masks' arithmetic says, and refuses
masks it cannot materialise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from ppruning.arch import get_adapter
from ppruning.errors import MaskShapeError
from ppruning.model.surgery import count_parameters, prune_model
from ppruning.units.masks import Masks
from tests.library.arch_cases import FAMILIES, family_paths, random_masks  # noqa: F401 - fixture


@pytest.mark.parametrize("family", list(FAMILIES))
def test_pruned_model_has_fewer_parameters_by_the_masks_arithmetic(family: str, family_paths: dict[str, Path]) -> None:  # noqa: F811
    model = transformers.AutoModel.from_pretrained(family_paths[family])
    shape = get_adapter(model).shape()
    masks = random_masks(model, seed=7)
    removed_heads = masks.head_mask.numel() - int(masks.head_mask.sum())
    removed_neurons = masks.neuron_mask.numel() - int(masks.neuron_mask.sum())
    expected = removed_heads * shape.head_unit_params() + removed_neurons * shape.neuron_params()
    before = count_parameters(model)
    prune_model(model, masks)
    assert before - count_parameters(model) == expected > 0


def test_head_unit_params_count_q_k_v_o_and_biases() -> None:
    from ppruning.arch.base import LayerShape, ModelShape

    mha = ModelShape(768, (LayerShape(12, 64, 1, 64, 3072),), gated_ffn=False)
    assert mha.head_unit_params() == 4 * 768 * 64 + 3 * 64
    assert mha.neuron_params() == 2 * 768 + 1
    gqa = ModelShape(
        4096, (LayerShape(8, 4 * 128, 4, 128, 11008),), gated_ffn=True, attention_bias=False, ffn_bias=False
    )
    assert gqa.head_unit_params() == 4096 * (2 * 4 * 128 + 2 * 128)
    assert gqa.neuron_params() == 3 * 4096
    assert mha.head_unit_macs(128) == 4 * 128 * 768 * 64 + 2 * 128**2 * 64
    assert mha.neuron_macs(128) == 2 * 128 * 768


def test_a_layer_left_without_heads_is_refused(tiny_bert_path: Path) -> None:
    model = transformers.AutoModel.from_pretrained(tiny_bert_path)
    masks = Masks(torch.ones(3, 4), torch.ones(3, 64))
    masks.head_mask[1] = 0
    with pytest.raises(MaskShapeError, match=r"head_mask keeps nothing in layer\(s\) \[1\]"):
        prune_model(model, masks)
    masks = Masks(torch.ones(3, 4), torch.ones(3, 64))
    masks.neuron_mask[2] = 0
    with pytest.raises(MaskShapeError, match=r"neuron_mask keeps nothing in layer\(s\) \[2\]"):
        prune_model(model, masks)
    assert get_adapter(model).shape().layers[1].num_head_units == 4, "a refused mask must leave the model intact"


def test_pruning_a_pruned_model_again_keeps_the_original_shape_on_record(tiny_gpt2_path: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_gpt2_path).eval()
    first = Masks(torch.tensor([[1.0, 1, 1, 0]] * 3), torch.ones(3, 64))
    prune_model(model, first)
    second = Masks(torch.tensor([[0.0, 1, 1]] * 3), torch.cat([torch.ones(3, 10), torch.zeros(3, 54)], dim=1))
    prune_model(model, second)
    record = model.config.ppruning_structure
    assert record["num_head_units"] == [2, 2, 2] and record["ffn_size"] == [10, 10, 10]
    assert record["original"] == {"num_head_units": [4] * 3, "num_attention_heads": [4] * 3, "ffn_size": [64] * 3}
    attn = model.transformer.h[0].attn
    assert (attn.split_size, attn.num_heads, attn.c_attn.weight.shape[1]) == (16, 2, 48)
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3]]))  # still runs with the reduced per-layer shapes
