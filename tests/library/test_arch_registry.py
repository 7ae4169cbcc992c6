"""The adapter registry and what adapters report before any surgery."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoConfig

from ppruning.arch import adapter_class, get_adapter, supported_model_types
from ppruning.errors import UnsupportedModelError
from tests.library.arch_cases import FAMILIES, family_paths  # noqa: F401 - fixture


def test_supported_model_types_cover_the_issue_families() -> None:
    assert {"bert", "roberta", "distilbert", "gpt2", "llama", "opt"} <= set(supported_model_types())


def test_unknown_model_type_is_rejected_with_the_supported_list() -> None:
    with pytest.raises(UnsupportedModelError) as err:
        adapter_class("t5")
    assert "'t5'" in err.value.message and "bert" in err.value.message and "gpt2" in err.value.message
    assert err.value.field == "model.id"


def test_get_adapter_rejects_a_model_without_config() -> None:

    with pytest.raises(UnsupportedModelError):
        get_adapter(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_shape_from_config_alone_matches_the_loaded_model(family: str, family_paths: dict[str, Path]) -> None:  # noqa: F811
    """validate_prune_config relies on shape_from_config without loading weights."""
    path = family_paths[family]
    config = AutoConfig.from_pretrained(path)
    model = transformers.AutoModel.from_pretrained(path)
    assert adapter_class(config.model_type).shape_from_config(config) == get_adapter(model).shape()


def test_llama_head_unit_is_a_kv_group_with_its_query_heads(tiny_llama_path: Path) -> None:
    model = transformers.AutoModel.from_pretrained(tiny_llama_path)
    layer = get_adapter(model).shape().layers[0]
    # tiny llama: 4 query heads, 2 KV heads, hidden 32 -> head_dim 8, 2 query heads per group
    assert (layer.num_head_units, layer.query_heads_per_unit, layer.head_dim, layer.head_unit_width) == (2, 2, 8, 16)
    assert get_adapter(model).shape().gated_ffn


def test_adapter_finds_the_backbone_of_task_head_models(tiny_bert_path: Path) -> None:
    base = get_adapter(transformers.AutoModel.from_pretrained(tiny_bert_path))
    head = get_adapter(transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert_path))
    assert head.shape() == base.shape()
    assert head.head_output_module(0) is head.model.bert.encoder.layer[0].attention.output.dense


@pytest.mark.parametrize("family", list(FAMILIES))
def test_unit_modules_have_the_widths_the_shape_reports(family: str, family_paths: dict[str, Path]) -> None:  # noqa: F811
    """Head outputs: input columns of the output projection; neurons: FFN-in outputs, FFN-out inputs."""
    adapter = get_adapter(transformers.AutoModel.from_pretrained(family_paths[family]))
    layer = adapter.shape().layers[0]

    def in_features(m: torch.nn.Module) -> int:
        return m.nx if type(m).__name__ == "Conv1D" else m.in_features

    def out_features(m: torch.nn.Module) -> int:
        return m.nf if type(m).__name__ == "Conv1D" else m.out_features

    assert in_features(adapter.head_output_module(0)) == layer.num_head_units * layer.head_unit_width
    assert in_features(adapter.neuron_output_module(0)) == layer.ffn_size
    inputs = adapter.neuron_input_modules(0)
    assert len(inputs) == (2 if adapter.gated_ffn else 1)
    assert all(out_features(m) == layer.ffn_size for m in inputs)
