"""Adding a model family is one adapter, nothing else: a throw-away StarCoder2 adapter, defined here.

StarCoder2 is a decoder the library does not ship an adapter for: grouped-query attention
with biases, and an FFN that is not gated (``mlp.c_fc`` -> ``mlp.c_proj``). The adapter
below declares its layout, size fields and shape; registered for the length of a test, the
family then passes the same registry-built checks as the shipped ones (the portable format's
config, model classes and stock path, surgery against masking, prune -> save -> plain
transformers load in a fresh process) and runs methods through ``prune()``. The tiny test
model comes from the registry's generic builder; the portable format needs no entry of its
own (the shipped modelling file reads the layout the adapter writes into the config).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import transformers

import ppruning
from ppruning.arch import register_adapter, unregister_adapter
from ppruning.arch.base import ArchAdapter, LayerShape, ModelShape
from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.model.mask_hooks import apply_masks
from ppruning.model.surgery import prune_model
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from tests.library import test_portable_checkpoint as portable
from tests.library.arch_cases import batch, outputs, random_masks
from tests.library.test_portable_checkpoint import FRESH_PROCESS, run_fresh, save_case, uniform_masks
from tests.support.registry_models import save_tiny
from tests.support.reviews import reviews_task


class Starcoder2Adapter(ArchAdapter):
    model_types = ("starcoder2",)
    layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="layers",
        head_dim="self_attn.head_dim",
        query="self_attn.q_proj",
        key="self_attn.k_proj",
        value="self_attn.v_proj",
        attn_out="self_attn.o_proj",
        ffn_in=("mlp.c_fc",),
        ffn_out="mlp.c_proj",
    )
    size_fields: ClassVar[SizeFields] = SizeFields(
        "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"
    )
    is_decoder = True
    explicit_head_dim = True  # the attention reads config.head_dim when the config has one

    @classmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        group = config.num_attention_heads // config.num_key_value_heads
        layer = LayerShape(config.num_key_value_heads, group * head_dim, group, head_dim, config.intermediate_size)
        bias = bool(config.use_bias)
        layers = (layer,) * config.num_hidden_layers
        return ModelShape(config.hidden_size, layers, gated_ffn=False, attention_bias=bias, ffn_bias=bias)


@pytest.fixture(scope="module")
def starcoder2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The adapter registered, and the family's tiny model (the registry's generic builder)."""
    register_adapter(Starcoder2Adapter)
    try:
        yield save_tiny("starcoder2", tmp_path_factory.mktemp("tiny-starcoder2"))
    finally:
        unregister_adapter(Starcoder2Adapter)


def test_the_new_family_passes_the_registry_built_portable_checks(starcoder2: Path) -> None:
    assert "starcoder2" in ppruning.arch.supported_model_types()
    portable.test_every_registered_family_has_a_portable_config_model_classes_and_a_stock_path("starcoder2")


def test_the_new_family_is_cut_exactly_as_it_is_masked_and_reloads(starcoder2: Path, tmp_path: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(starcoder2).eval()
    config = transformers.AutoConfig.from_pretrained(starcoder2)
    assert Starcoder2Adapter.shape_from_config(config) == ppruning.arch.get_adapter(model).shape()
    masks = random_masks(model, seed=4)
    inputs = batch(model.config.vocab_size)
    with apply_masks(model, masks):
        masked = outputs(model, inputs)
    prune_model(model, masks)
    torch.testing.assert_close(outputs(model, inputs), masked, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_the_new_family_prunes_saves_and_loads_with_plain_transformers(starcoder2: Path, tmp_path: Path) -> None:
    cases = [save_case(starcoder2, head, tmp_path / head) for head in ("causal-lm", "sequence-classification")]
    assert json.loads((tmp_path / "causal-lm" / "config.json").read_text())["model_type"] == "pruned_starcoder2"
    assert run_fresh(FRESH_PROCESS, json.dumps(cases), cwd=tmp_path).strip().endswith("ok 2")
    stock = save_case(starcoder2, "causal-lm", tmp_path / "uniform", masks_for=uniform_masks)
    assert json.loads((tmp_path / "uniform" / "config.json").read_text())["model_type"] == "starcoder2"
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "uniform").eval()  # no remote code
    ref = torch.load(stock["ref"])
    torch.testing.assert_close(outputs(reloaded, ref["inputs"]), ref["outputs"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["ppruning", "prunenet"])
def test_methods_run_on_the_new_family_without_an_edit(method: str, starcoder2: Path, tmp_path: Path) -> None:
    target = "flops_reduction" if method == "ppruning" else "params_reduction"
    config = PruneConfig.model_validate(
        {
            "model": {"id": str(starcoder2)},
            "task": reviews_task(),
            "method": method,
            "target": {target: 0.15},
            "params": {"lambda_val": 1.0} if method == "ppruning" else {"num_episodes": 2},
            "sampling": {"max_instances": 16, "sampling_tokens": 24, "max_length": 32},
            "measure": False,
        }
    )
    result = prune(config, tmp_path / "out")
    assert result.report["achieved"][f"{target}_pruned_part"] >= 0.15 - 1e-6
    assert ppruning.load_pruned(result.model_dir).config.model_type == "starcoder2"
