"""Outlier neurons: found without labels in one pass where a neuron's peak towers over its layer's, none in an
ordinary model, and protected with every layer's count (so the budget) unchanged, the swaps recorded."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from ppruning.arch import get_adapter
from ppruning.recovery.outlier_units import OutlierUnitsConfig, find_outlier_neurons, protect_outliers
from ppruning.run.config import PruneConfig
from ppruning.run.plan import prune_stages, resolve_prune_plan
from ppruning.run.prune import prune
from ppruning.units.masks import Masks, load_masks
from tests.support.registry_models import tiny_config
from tests.support.tiny_models import bpe_tokenizer


def _model(model_type: str = "llama") -> torch.nn.Module:
    config = tiny_config(model_type, vocab_size=120, pad_token_id=0, bos=None, eos=None)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def _rows(n: int = 8) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(1)
    rows = []
    for i in range(n):
        length = 4 + (5 * i) % 9
        rows.append(
            {"input_ids": torch.randint(5, 120, (length,), generator=g).tolist(), "attention_mask": [1] * length}
        )
    return rows


@torch.no_grad()
def _make_outlier(model: torch.nn.Module, layer: int, neuron: int, scale: float) -> None:
    """Scale one neuron's input rows so its activation is far above the layer's others (a massive activation)."""
    adapter = get_adapter(model)
    for module in adapter.neuron_input_modules(layer):
        weight = module.weight  # Linear [ffn, hidden]: one row per neuron
        weight[neuron] *= scale


def test_an_ordinary_model_has_no_outlier_neurons() -> None:
    model = _model()
    found = find_outlier_neurons(model, get_adapter(model), _rows(), OutlierUnitsConfig())
    assert found.neurons == {} and found.tokens == sum(len(r["input_ids"]) for r in _rows())


def test_a_neuron_with_massive_activations_is_found_and_kept_with_the_layers_count_unchanged() -> None:
    model = _model()
    _make_outlier(model, layer=1, neuron=5, scale=30.0)  # gate and up both scaled: about 900x its peers
    adapter = get_adapter(model)
    found = find_outlier_neurons(model, adapter, _rows(), OutlierUnitsConfig())
    assert found.neurons == {1: [5]} and found.ratios[1][0] > 40.0

    shape = adapter.shape()
    neurons = torch.ones(shape.num_layers, shape.layers[0].ffn_size)
    neurons[1, :10] = 0.0  # the method dropped neuron 5 among others
    masks = Masks(torch.ones(shape.num_layers, shape.layers[0].num_head_units), neurons)
    protected, swaps = protect_outliers(masks, found)
    assert protected.neuron_mask[1, 5] == 1.0
    assert torch.equal(protected.neuron_mask.sum(dim=1), masks.neuron_mask.sum(dim=1))  # the budget is unchanged
    assert torch.equal(protected.head_mask, masks.head_mask) and torch.equal(protected.neuron_mask[0], neurons[0])
    (swap,) = swaps
    kept = torch.nonzero(neurons[1]).flatten()
    weakest = int(kept[torch.argmin(found.contribution[1][kept])])
    assert swap == {"layer": 1, "kept": 5, "dropped": weakest} and protected.neuron_mask[1, weakest] == 0.0
    assert found.record(40.0, swaps)["neurons"] == {"1": [5]}


def test_masks_that_already_keep_the_outliers_are_returned_unchanged() -> None:
    model = _model("gpt2")
    _make_outlier_gpt2(model)
    adapter = get_adapter(model)
    found = find_outlier_neurons(model, adapter, _rows(), OutlierUnitsConfig())
    assert found.neurons == {0: [3]}
    shape = adapter.shape()
    masks = Masks(torch.ones(shape.num_layers, shape.layers[0].num_head_units), torch.ones(shape.num_layers, 64))
    protected, swaps = protect_outliers(masks, found)
    assert torch.equal(protected.neuron_mask, masks.neuron_mask) and swaps == []


@torch.no_grad()
def _make_outlier_gpt2(model: torch.nn.Module) -> None:
    """GPT-2's c_fc is a Conv1D [hidden, ffn]: scale neuron 3's column and bias of layer 0."""
    fc = model.transformer.h[0].mlp.c_fc
    fc.weight[:, 3] *= 400.0
    fc.bias[3] = 50.0


CORPUS_FILE = Path(__file__).parents[1] / "fixtures" / "custom" / "corpus_train.txt"
CORPUS = {"name": "causal-lm", "data_files": {"train": str(CORPUS_FILE)}}


def _saved_llama_with_outlier(path: Path) -> Path:
    tokenizer = bpe_tokenizer()
    config = tiny_config("llama", len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, None)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    _make_outlier(model, layer=1, neuron=5, scale=30.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _spec(model_dir: Path, **extra: object) -> PruneConfig:
    return PruneConfig.model_validate(
        {
            "model": {"id": str(model_dir)},
            "task": CORPUS,
            "method": "random",
            "target": {"params_reduction": 0.5},
            "sampling": {"max_instances": 16, "max_length": 32},
            "measure": False,
            "compensation": False,
            **extra,
        }
    )


def test_a_prune_keeps_the_outlier_neuron_by_default_lists_it_and_false_turns_it_off(tmp_path: Path) -> None:
    model_dir = _saved_llama_with_outlier(tmp_path / "dense")
    config = _spec(model_dir, seed=1)  # seed 1's random choice drops neuron 5 of layer 1
    assert "outlier_units" in prune_stages(config)
    on = prune(config, tmp_path / "on")
    details = on.report["details"]["outlier_units"]
    assert details["neurons"] == {"1": [5]} and details["swaps"][0]["kept"] == 5
    assert load_masks(on.output_dir).neuron_mask[1, 5] == 1.0

    off = prune(_spec(model_dir, seed=1, outlier_units=False), tmp_path / "off")
    assert "outlier_units" not in off.report["details"] and load_masks(off.output_dir).neuron_mask[1, 5] == 0.0
    assert torch.equal(  # the same count per layer: the budget is unchanged
        load_masks(on.output_dir).neuron_mask.sum(dim=1), load_masks(off.output_dir).neuron_mask.sum(dim=1)
    )
    assert resolve_prune_plan(_spec(model_dir, outlier_units={"ratio": 5000})).outlier_units.ratio == 5000
    assert resolve_prune_plan(_spec(model_dir, method="shortgpt")).outlier_units is None  # no neuron masks


def test_the_cli_flags_turn_it_off_or_set_the_ratio(tmp_path: Path) -> None:
    from ppruning.cli.cmd_prune import build_config
    from ppruning.cli.main import build_parser

    base = [
        "prune",
        "--model",
        "m",
        "--task",
        "sst2",
        "--method",
        "random",
        "--params-reduction",
        "0.2",
        "--output",
        "o",
    ]
    parser = build_parser()
    assert build_config(parser.parse_args([*base, "--no-outlier-units"])).outlier_units is False
    assert build_config(parser.parse_args([*base, "--outlier-ratio", "80"])).outlier_units.ratio == 80
    assert build_config(parser.parse_args(base)).outlier_units is None
