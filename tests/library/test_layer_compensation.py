"""Compensation for removed layers (ShortGPT): the layer below a removed run refits its FFN output projection
to add the run's change, by the least-squares solution, for every decoder family; a run with no layer below or
a post-norm family is left alone and recorded; a prune run stores the refit and reproduces its checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from ppruning.arch import get_adapter
from ppruning.model.layer_surgery import drop_layers
from ppruning.recovery.compensation import CompensationConfig, output_module
from ppruning.recovery.layer_compensation import compensate_layer_drop, removed_runs
from tests.support.registry_models import tiny_config

FAMILIES = ("llama", "gpt2", "opt", "qwen2")


def _model(model_type: str, layers: int = 5, **extra: object) -> torch.nn.Module:
    config = tiny_config(model_type, vocab_size=120, pad_token_id=0, bos=None, eos=None)
    values = config.to_dict()
    values["num_hidden_layers" if "num_hidden_layers" in values else "n_layer"] = layers
    values.pop("layer_types", None)
    values.update(extra)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(type(config)(**values)).eval()


def _rows(n: int = 10, seed: int = 3) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = 5 + (3 * i) % 9  # ragged: pads stay out of the fit
        ids = torch.randint(5, 120, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "attention_mask": [1] * length})
    return out


def _one_row_forward(model: torch.nn.Module, row: dict[str, list[int]]) -> torch.Tensor:
    ids = torch.tensor([row["input_ids"]])
    return model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states


def test_removed_runs_name_the_layer_below_each_run() -> None:
    assert removed_runs([3, 1, 4, 7], 9) == [(0, [1]), (2, [3, 4]), (6, [7])]
    assert removed_runs([0, 1, 5], 6) == [(-1, [0, 1]), (4, [5])]


@pytest.mark.parametrize("model_type", FAMILIES)
@torch.no_grad()
def test_the_refit_is_the_least_squares_fit_of_the_projection_plus_the_removed_runs_change(model_type: str) -> None:
    """One removed layer: the refit equals a direct solve on the layer's FFN inputs and the removed block's change."""
    model = _model(model_type)
    adapter = get_adapter(model)
    if not adapter.ffn_output_adds_to_residual():
        pytest.skip("a post-norm configuration: tested below")
    rows = _rows()
    dense = copy.deepcopy(model)
    module = output_module(adapter, 1, "ffn")
    weight = adapter.weight_out_in(module).detach().clone().double()
    xs, ys = [], []
    seen: list[torch.Tensor] = []
    handle = output_module(get_adapter(dense), 1, "ffn").register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    for row in rows:  # dense model: layer 1's FFN input, and the change layer 2 adds to layer 1's output
        hidden = _one_row_forward(dense, row)
        x = seen.pop().reshape(-1, weight.shape[1]).double()  # OPT flattens its FFN input
        xs.append(x)
        ys.append(x @ weight.T + (hidden[3][0] - hidden[2][0]).double())
    handle.remove()
    x, y = torch.cat(xs), torch.cat(ys)
    config = CompensationConfig(alpha=0.0, outliers="keep", bias=False)
    result = compensate_layer_drop(model, adapter, [2], rows, config, batch_size=4)
    assert list(result.refits) == [(1, "ffn")]
    want = torch.linalg.lstsq(x, y).solution.T  # [d, D]
    got = adapter.weight_out_in(output_module(adapter, 1, "ffn")).double()
    torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-4)
    before, after = result.refits[(1, "ffn")]
    assert after < before


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
@torch.no_grad()
def test_compensation_brings_the_shallower_model_closer_to_the_dense_one(model_type: str) -> None:
    model = _model(model_type, layers=6)
    rows = _rows(24)
    dense = copy.deepcopy(model)
    plain = drop_layers(copy.deepcopy(model), [2, 3, 5])
    result = compensate_layer_drop(model, get_adapter(model), [2, 3, 5], rows, CompensationConfig(), batch_size=5)
    assert sorted(result.refits) == [(1, "ffn"), (4, "ffn")]
    fitted = drop_layers(model, [2, 3, 5])

    def error(candidate: torch.nn.Module) -> float:
        total = 0.0
        for row in rows:
            total += float((_one_row_forward(candidate, row)[-1] - _one_row_forward(dense, row)[-1]).pow(2).sum())
        return total

    assert error(fitted) < 0.8 * error(plain)


@torch.no_grad()
def test_a_run_from_layer_zero_and_a_post_norm_family_are_left_alone_and_recorded() -> None:
    model = _model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compensate_layer_drop(model, get_adapter(model), [0, 1], _rows(), CompensationConfig())
    assert result.refits == {} and result.layers == [
        {"removed": [0, 1], "below": None, "refit": False, "why": "no layer below"}
    ]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    post_norm = _model("opt", do_layer_norm_before=False)
    result = compensate_layer_drop(post_norm, get_adapter(post_norm), [2], _rows(), CompensationConfig())
    assert result.refits == {} and "normalised" in result.layers[0]["why"]


@torch.no_grad()
def test_the_dense_target_and_one_pass_also_fit_and_are_deterministic() -> None:
    fits = []
    for config in (CompensationConfig(target="dense"), CompensationConfig(sequential=False)):
        runs = []
        for _ in range(2):
            model = _model("llama", layers=6)
            result = compensate_layer_drop(model, get_adapter(model), [2, 4], _rows(), config, batch_size=4)
            assert sorted(result.refits) == [(1, "ffn"), (3, "ffn")]
            runs.append(adapter_weight(model, 3))
        assert torch.equal(runs[0], runs[1])
        fits.append(runs[0])
    assert not torch.equal(fits[0], fits[1])  # layer 3 sees different inputs: the dense or the compensated stream


def adapter_weight(model: torch.nn.Module, layer: int) -> torch.Tensor:
    adapter = get_adapter(model)
    return adapter.weight_out_in(output_module(adapter, layer, "ffn")).detach().clone()
