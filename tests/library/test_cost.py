"""Cost model: per-unit figures of docs/algorithms.md, exact parameter counts, the unpruned rest reported apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModel, AutoModelForCausalLM

from ppruning.arch import get_adapter
from ppruning.arch.base import LayerShape, ModelShape
from ppruning.units.cost import model_costs, pruned_part_total, unit_costs


def test_unit_costs_follow_the_documented_formulas() -> None:
    d, dh, L = 768, 64, 128
    shape = ModelShape(d, (LayerShape(12, dh, 1, dh, 3072),) * 2, gated_ffn=False)
    flops = unit_costs(shape, "flops", L)
    assert flops.head[0] == 4 * L * d * dh + 2 * L**2 * dh
    assert flops.neuron[0] == 2 * L * d
    params = unit_costs(shape, "params", L)
    assert params.head[0] == 4 * d * dh + 3 * dh  # Q, K, V biases
    assert params.neuron[0] == 2 * d + 1
    gated = ModelShape(d, (LayerShape(4, 2 * dh, 2, dh, 3072),), gated_ffn=True, attention_bias=False, ffn_bias=False)
    assert unit_costs(gated, "flops", L).neuron[0] == 3 * L * d
    assert unit_costs(gated, "params", L).neuron[0] == 3 * d
    # a KV group of 2 query heads: Q and O for 2 heads, K and V once
    assert unit_costs(gated, "params", L).head[0] == d * (2 * 2 * dh + 2 * dh)
    assert pruned_part_total(shape, flops) == 2 * (12 * flops.head[0] + 3072 * flops.neuron[0])


def test_model_costs_count_parameters_exactly_and_split_off_the_rest(tiny_bert_path: Path) -> None:
    model = AutoModel.from_pretrained(tiny_bert_path)
    adapter = get_adapter(model)
    costs = model_costs(model, adapter.shape(), 20)
    layer = model.encoder.layer[0]
    per_layer = (
        sum(
            p.numel()
            for m in (
                layer.attention.self.query,
                layer.attention.self.key,
                layer.attention.self.value,
                layer.attention.output.dense,
                layer.intermediate.dense,
                layer.output.dense,
            )
            for p in m.parameters()
        )
        - layer.attention.output.dense.bias.numel()
        - layer.output.dense.bias.numel()
    )  # output biases are not per unit
    assert costs["params"]["pruned_part"] == 3 * per_layer
    assert costs["params"]["total"] == sum(p.numel() for p in model.parameters())
    assert costs["params"]["other"] == costs["params"]["total"] - costs["params"]["pruned_part"]
    assert costs["flops"]["other"] == pytest.approx(20 * 32 * 32)  # the pooler, counted at every token


def test_lm_head_is_priced_as_not_pruned(tiny_gpt2_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    costs = model_costs(model, get_adapter(model).shape(), 16)
    vocab, d = model.config.vocab_size, model.config.n_embd
    assert costs["flops"]["other"] == pytest.approx(16 * vocab * d)
    assert costs["flops"]["total"] == pytest.approx(costs["flops"]["pruned_part"] + costs["flops"]["other"])
