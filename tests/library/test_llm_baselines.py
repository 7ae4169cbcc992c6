"""The decoder baselines from the LLM literature (``wanda-sp``, ``flap``) against direct computations.

Each score is recomputed here from the activations captured one example at a time (no
padding, no batching, plain torch), so the streamed statistics, the pad handling, the
per-unit sums and the standardisation are each checked against the formula of the paper.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from ppruning.arch import get_adapter
from ppruning.methods.baselines.calibration import output_moments
from ppruning.methods.baselines.flap import FLAPParams, flap_masks, flap_scores
from ppruning.methods.baselines.wanda_sp import WandaSPParams, wanda_sp_masks, wanda_sp_scores
from ppruning.methods.contract import MethodContext, SamplingConfig
from ppruning.model.surgery import prune_model
from ppruning.progress import NULL_PROGRESS
from ppruning.tasks import get_task
from ppruning.tasks.refs import TaskRef
from ppruning.units.budget import Target, make_budget
from tests.support.registry_models import tiny_config

FAMILIES = ("llama", "opt", "gpt2", "qwen2")
SEQ_LEN = 16


def _model(model_type: str) -> torch.nn.Module:
    config = tiny_config(model_type, vocab_size=120, pad_token_id=0, bos=None, eos=None)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # biases away from zero, so a mean contribution is not zero by construction
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _examples(n: int = 7) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(3)
    rows = []
    for i in range(n):
        length = 4 + (5 * i) % 11  # different lengths: batches are padded
        ids = torch.randint(5, 120, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length})
    return rows


def _ctx(model: torch.nn.Module, params, target: float = 0.25) -> MethodContext:
    adapter = get_adapter(model)
    shape = adapter.shape()
    return MethodContext(
        params=params,
        sampling=SamplingConfig(batch_size=3, max_length=SEQ_LEN),
        seed=0,
        task=get_task("causal-lm"),
        task_ref=TaskRef(name="causal-lm"),
        model=model,
        tokenizer=None,
        adapter=adapter,
        shape=shape,
        budget=make_budget(Target(params_reduction=target), shape, SEQ_LEN, params.lambda_val),
        progress=NULL_PROGRESS,
        examples=_examples(),
        pad_token_id=0,
    )


def _direct_inputs(model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer, the inputs of the attention output and FFN down projections over every token, one example a pass."""
    adapter = get_adapter(model)
    n = adapter.shape().num_layers
    heads: list[list[torch.Tensor]] = [[] for _ in range(n)]
    neurons: list[list[torch.Tensor]] = [[] for _ in range(n)]
    handles = []

    def keep(store: list[torch.Tensor]):
        return lambda module, args: store.append(args[0].reshape(-1, args[0].shape[-1]))

    for i in range(n):
        handles.append(adapter.head_output_module(i).register_forward_pre_hook(keep(heads[i])))
        handles.append(adapter.neuron_output_module(i).register_forward_pre_hook(keep(neurons[i])))
    with torch.no_grad():
        for ex in _examples():
            model(input_ids=torch.tensor([ex["input_ids"]]))
    for h in handles:
        h.remove()
    return [torch.cat(x).double() for x in heads], [torch.cat(x).double() for x in neurons]


@pytest.mark.parametrize("model_type", FAMILIES)
def test_streamed_moments_equal_the_direct_mean_variance_and_norm(model_type: str) -> None:
    model = _model(model_type)
    moments = output_moments(model, get_adapter(model), _examples(), batch_size=3)
    heads, neurons = _direct_inputs(model)
    for i in range(len(heads)):
        for got, x in ((moments.heads[i], heads[i]), (moments.neurons[i], neurons[i])):
            assert got.count == x.shape[0] == sum(len(e["input_ids"]) for e in _examples())
            torch.testing.assert_close(got.mean, x.mean(0), rtol=1e-5, atol=1e-6)  # float32 forward, batched
            torch.testing.assert_close(got.variance, x.var(0, unbiased=True), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got.sq_norm, (x**2).sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_wanda_sp_scores_are_weight_magnitude_times_input_norm_summed_per_unit(model_type: str) -> None:
    model = _model(model_type)
    adapter = get_adapter(model)
    moments = output_moments(model, adapter, _examples(), batch_size=3)
    heads, neurons = _direct_inputs(model)
    for i, la in enumerate(adapter.shape().layers):
        w_o = adapter.weight_out_in(adapter.head_output_module(i)).detach().double()
        w_d = adapter.weight_out_in(adapter.neuron_output_module(i)).detach().double()
        want_heads = (w_o.abs() * heads[i].norm(dim=0)).sum(0).reshape(la.num_head_units, -1).sum(1)
        want_neurons = (w_d.abs() * neurons[i].norm(dim=0)).sum(0)
        got_heads, got_neurons = wanda_sp_scores(adapter, moments, i)
        np.testing.assert_allclose(got_heads, want_heads.numpy(), rtol=1e-5)
        np.testing.assert_allclose(got_neurons, want_neurons.numpy(), rtol=1e-5)


def test_wanda_sp_keeps_each_layers_best_units_at_uniform_counts() -> None:
    model = _model("llama")
    ctx = _ctx(model, WandaSPParams(lambda_val=1.0))
    masks = wanda_sp_masks(ctx)
    moments = output_moments(model, ctx.adapter, _examples(), batch_size=3)
    assert len(set(masks.neuron_counts())) == 1 and max(masks.neuron_counts()) < ctx.shape.layers[0].ffn_size
    for i in range(ctx.shape.num_layers):
        _, neurons = wanda_sp_scores(ctx.adapter, moments, i)
        kept = masks.neuron_mask[i].bool().numpy()
        assert neurons[kept].min() >= neurons[~kept].max()


def _standardised(s: torch.Tensor) -> torch.Tensor:
    return (s - s.mean()) / s.std(unbiased=True)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_flap_scores_are_standardised_weighted_input_variance(model_type: str) -> None:
    model = _model(model_type)
    adapter = get_adapter(model)
    moments = output_moments(model, adapter, _examples(), batch_size=3)
    heads, neurons = _direct_inputs(model)
    for i, la in enumerate(adapter.shape().layers):
        w_o = adapter.weight_out_in(adapter.head_output_module(i)).detach().double()
        w_d = adapter.weight_out_in(adapter.neuron_output_module(i)).detach().double()
        channel_h = heads[i].var(0, unbiased=True) * (w_o**2).sum(0)
        want_heads = _standardised(channel_h).reshape(la.num_head_units, -1).mean(1)
        want_neurons = _standardised(neurons[i].var(0, unbiased=True) * (w_d**2).sum(0))
        got_heads, got_neurons = flap_scores(adapter, moments, i)
        np.testing.assert_allclose(got_heads, want_heads.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got_neurons, want_neurons.numpy(), rtol=1e-4, atol=1e-5)


def test_flap_global_allocation_is_one_cost_weighted_ranking_over_layers_and_unit_types() -> None:
    model = _model("llama")
    ctx = _ctx(model, FLAPParams(), target=0.3)
    masks = flap_masks(ctx)
    moments = output_moments(model, ctx.adapter, _examples(), batch_size=3)
    b = ctx.budget
    removed_cost, removed_scores, kept_scores = 0.0, [], []
    for i in range(ctx.shape.num_layers):
        h, n = flap_scores(ctx.adapter, moments, i)
        groups = ((h, masks.head_mask[i], b.costs.head[i]), (n, masks.neuron_mask[i], b.costs.neuron[i]))
        for scores, mask, cost in groups:
            kept = mask.bool().numpy()
            removed_cost += float((~kept).sum()) * cost
            removed_scores += scores[~kept].tolist()
            best = int(np.argmax(scores))  # every layer keeps its best unit of each type whatever its score
            kept_scores += [s for j, s in enumerate(scores) if kept[j] and j != best]
    assert removed_cost >= (b.head_removal + b.neuron_removal) * (1 - 1e-9)
    assert removed_scores and max(removed_scores) <= min(kept_scores)
    assert ctx.details["allocation"].startswith("global")


def test_flap_bias_compensation_adds_the_removed_channels_mean_contribution() -> None:
    model = _model("opt")  # OPT's output projections have biases
    ctx = _ctx(model, FLAPParams(allocation="uniform", lambda_val=1.0))
    masks = flap_masks(ctx)
    heads, neurons = _direct_inputs(model)
    assert masks.bias_delta_attention is not None and masks.bias_delta_ffn is not None
    for i, la in enumerate(ctx.shape.layers):
        attention = ctx.adapter.head_output_module(i), masks.head_columns(i, la.head_unit_width)
        ffn = ctx.adapter.neuron_output_module(i), masks.neuron_columns(i)
        for delta, x, (module, columns) in (
            (masks.bias_delta_attention[i], heads[i], attention),
            (masks.bias_delta_ffn[i], neurons[i], ffn),
        ):
            removed = columns < 0.5
            assert removed.any()
            want = module.weight.detach().double()[:, removed] @ x[:, removed].mean(0)
            torch.testing.assert_close(delta.double(), want, rtol=1e-5, atol=1e-6)
    # The cut model's projection = the dense one with the removed channels held at their mean.
    dense_bias = ctx.adapter.neuron_output_module(0).bias.detach().clone()
    prune_model(model, masks, ctx.adapter)
    torch.testing.assert_close(ctx.adapter.neuron_output_module(0).bias.detach(), dense_bias + masks.bias_delta_ffn[0])


def test_flap_says_when_a_family_has_no_output_bias_to_compensate_with() -> None:
    ctx = _ctx(_model("llama"), FLAPParams())
    masks = flap_masks(ctx)
    assert masks.bias_delta_attention is None and masks.bias_delta_ffn is None
    assert all(note.startswith("not applied") for note in ctx.details["bias_compensation"].values())
