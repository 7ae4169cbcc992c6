"""The decoder baselines from the LLM literature (``wanda-sp``, ``flap``, ``shortgpt``) against direct computations.

Each score is recomputed here from the activations captured one example at a time (no
padding, no batching, plain torch), so the streamed statistics, the pad handling, the
per-unit sums and the standardisation are each checked against the formula of the paper.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from ppruning import load_pruned
from ppruning.arch import get_adapter
from ppruning.errors import InfeasibleTargetError
from ppruning.methods.baselines.calibration import output_moments
from ppruning.methods.baselines.flap import FLAPParams, flap_masks, flap_scores
from ppruning.methods.baselines.shortgpt import ShortGPTParams, block_influence, shortgpt_layers
from ppruning.methods.baselines.wanda_sp import WandaSPParams, wanda_sp_masks, wanda_sp_scores
from ppruning.methods.contract import MethodContext, SamplingConfig
from ppruning.model.layer_surgery import drop_layers
from ppruning.model.surgery import prune_model
from ppruning.progress import NULL_PROGRESS
from ppruning.recovery.compensation import COMPENSATION_FILE, load_refit
from ppruning.recovery.layer_compensation import apply_layer_refit
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from ppruning.tasks import get_task
from ppruning.tasks.refs import TaskRef
from ppruning.units.budget import Target, make_budget
from ppruning.units.layer_drop import layers_to_remove
from tests.support.registry_models import tiny_config
from tests.support.tiny_models import bpe_tokenizer

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


# --------------------------------------------------------------------------- ShortGPT

CORPUS_FILE = Path(__file__).parents[1] / "fixtures" / "custom" / "corpus_train.txt"
CORPUS = {"name": "causal-lm", "data_files": {"train": str(CORPUS_FILE)}}


def _deep_model(model_type: str, layers: int = 6) -> torch.nn.Module:
    config = tiny_config(model_type, vocab_size=120, pad_token_id=0, bos=None, eos=None)
    values = config.to_dict()
    values["num_hidden_layers" if "num_hidden_layers" in values else "n_layer"] = layers
    values.pop("layer_types", None)
    config = type(config)(**values)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("model_type", FAMILIES)
def test_block_influence_is_one_minus_the_mean_cosine_of_a_layers_input_and_output(model_type: str) -> None:
    model = _deep_model(model_type, layers=4)
    got = block_influence(model, get_adapter(model), _examples(), batch_size=3)
    cos_sum, tokens = torch.zeros(3, dtype=torch.float64), 0
    with torch.no_grad():
        for ex in _examples():  # one example a pass: no padding
            hidden = model(input_ids=torch.tensor([ex["input_ids"]]), output_hidden_states=True).hidden_states
            for layer in range(3):  # the last entry is after the final norm: the last layer is checked below
                x, y = hidden[layer][0].double(), hidden[layer + 1][0].double()
                cos_sum[layer] += torch.nn.functional.cosine_similarity(x, y, dim=-1).sum()
            tokens += len(ex["input_ids"])
    np.testing.assert_allclose(got[:3], (1 - cos_sum / tokens).numpy(), rtol=1e-5, atol=1e-6)
    assert 0.0 <= got[3] <= 2.0


def test_layers_to_remove_meets_the_target_with_the_fewest_layers_and_keeps_one() -> None:
    assert layers_to_remove(Target(params_reduction=0.15), 30) == 5  # 4.5 layers -> 5 (16.7%)
    assert layers_to_remove(Target(flops_reduction=0.2), 30) == 6
    assert layers_to_remove(Target(params_reduction=0.01), 4) == 1
    with pytest.raises(InfeasibleTargetError, match="at most 0.7500"):
        layers_to_remove(Target(params_reduction=0.8), 4)


def test_shortgpt_removes_the_layers_of_lowest_block_influence() -> None:
    model = _deep_model("llama", layers=6)
    ctx = _ctx(model, ShortGPTParams())
    ctx.target = Target(params_reduction=0.3)  # 1.8 of 6 layers -> 2
    result = shortgpt_layers(ctx)
    scores = block_influence(model, ctx.adapter, _examples(), batch_size=3)
    assert list(result.removed) == sorted(np.argsort(scores)[:2].tolist())
    assert ctx.details["shortgpt"]["count"] == 2 and len(ctx.details["shortgpt"]["block_influence"]) == 6


def test_layer_surgery_keeps_the_kv_cache_consistent() -> None:
    model = _deep_model("qwen2", layers=5)
    drop_layers(model, [1, 3])
    assert model.config.num_hidden_layers == 3 and len(model.config.layer_types) == 3
    ids = torch.randint(5, 120, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=4, do_sample=False, use_cache=True, pad_token_id=0)
        uncached = model.generate(ids, max_new_tokens=4, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_shortgpt_checkpoint_loads_with_stock_transformers_in_a_fresh_process(model_type: str, tmp_path: Path) -> None:
    source = tmp_path / "dense"
    tokenizer = bpe_tokenizer()
    config = tiny_config(model_type, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, None)
    values = config.to_dict()
    values.pop("layer_types", None)
    values["num_hidden_layers" if "num_hidden_layers" in values else "n_layer"] = 5
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(type(config)(**values)).save_pretrained(source)
    tokenizer.save_pretrained(source)
    spec = {
        "model": {"id": str(source)},
        "task": CORPUS,
        "method": "shortgpt",
        "target": {"params_reduction": 0.3},
        "sampling": {"max_instances": 16, "max_length": 32},
        "measure": False,
    }
    result = prune(PruneConfig.model_validate(spec), tmp_path / "out")
    removed = result.report["layers_removed"]
    assert len(removed) == 2 and result.report["achieved"]["params_reduction_pruned_part"] == pytest.approx(0.4)
    assert json.loads((result.output_dir / "shortgpt_layers.json").read_text())["layers_removed"] == removed

    # compensation (on by default) refit the layer below each removed run; the stored refit reproduces the model
    refit = result.report["details"]["compensation"]["refit"]["ffn"]
    below = [layer for layer in range(5) if layer not in removed and layer + 1 in removed]
    assert refit == below and (result.output_dir / COMPENSATION_FILE).is_file()
    in_memory = AutoModelForCausalLM.from_pretrained(source).eval()
    apply_layer_refit(in_memory, get_adapter(in_memory), load_refit(result.output_dir))
    in_memory = drop_layers(in_memory, removed)
    ids = torch.randint(5, 120, (2, 9), generator=torch.Generator().manual_seed(1))
    torch.save(ids, tmp_path / "ids.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()\n"
        "with torch.no_grad():\n"
        "    torch.save(model(input_ids=torch.load(sys.argv[2])).logits, sys.argv[3])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # stock transformers, not this library
    subprocess.run(
        [sys.executable, "-c", script, str(result.model_dir), str(tmp_path / "ids.pt"), str(tmp_path / "logits.pt")],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    with torch.no_grad():
        want = in_memory(input_ids=ids).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), want)


def test_flap_can_add_the_bias_llamas_stock_config_describes(tmp_path: Path) -> None:
    source = tmp_path / "dense"
    tokenizer = bpe_tokenizer()
    config = tiny_config("llama", len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, None)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(source)
    tokenizer.save_pretrained(source)
    spec = {
        "model": {"id": str(source)},
        "task": CORPUS,
        "method": "flap",
        "target": {"params_reduction": 1 / 3},  # one KV group and 16 neurons of every layer: a stock config
        "params": {"allocation": "uniform", "bias_compensation": "add", "lambda_val": 1.0},
        "sampling": {"max_instances": 16, "max_length": 32},
        "measure": False,
    }
    result = prune(PruneConfig.model_validate(spec), tmp_path / "out")
    notes = result.report["details"]["bias_compensation"]
    assert all(note.startswith("applied") and "a bias added" in note for note in notes.values())

    stock = AutoModelForCausalLM.from_pretrained(result.model_dir).eval()  # plain transformers, stock config
    assert stock.config.attention_bias and stock.config.mlp_bias
    layer = stock.model.layers[0]
    assert layer.self_attn.o_proj.bias.abs().sum() > 0 and layer.mlp.down_proj.bias.abs().sum() > 0
    assert layer.self_attn.q_proj.bias.abs().sum() == 0 and layer.mlp.up_proj.bias.abs().sum() == 0
    ids = torch.randint(5, len(tokenizer), (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(stock(input_ids=ids).logits, load_pruned(result.model_dir)(input_ids=ids).logits)
