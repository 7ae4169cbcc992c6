"""Least-squares compensation: the refit is the least-squares solution for every family, a layer whose
kept inputs span the removed ones comes back exactly, statistics are streamed, a massive-activation
token cannot take over the fit, and a prune run with it is deterministic, recorded and reproducible."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from ppruning.arch import get_adapter
from ppruning.model.checkpoint import load_pruned
from ppruning.model.mask_hooks import apply_masks
from ppruning.model.surgery import prune_model
from ppruning.recovery.compensation import (
    COMPENSATION_FILE,
    CompensationConfig,
    apply_refit,
    compensate,
    kept_columns,
    load_refit,
    output_module,
    solve,
)
from ppruning.recovery.moments import Moments
from ppruning.recovery.outliers import token_weights
from ppruning.run.config import PruneConfig
from ppruning.run.plan import resolve_prune_plan
from ppruning.run.provenance import spec_from_record
from ppruning.run.prune import prune
from ppruning.units.masks import Masks, load_masks
from tests.library.arch_cases import FAMILIES, family_paths, outputs, random_masks  # noqa: F401
from tests.support.reviews import reviews_task


def token_rows(vocab: int, rows: int = 24, length: int = 12, seed: int = 0) -> list[dict[str, list[int]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for r in range(rows):
        n = length - (r % 3)  # ragged: padding must stay out of the statistics
        out.append({"input_ids": torch.randint(5, vocab, (n,), generator=g).tolist(), "attention_mask": [1] * n})
    return out


def projection_io(
    model: torch.nn.Module, masks: Masks, rows: list[dict[str, list[int]]], masked: bool
) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    """Per layer and projection: inputs [tokens, D] and outputs without bias, one unpadded row at a time."""
    adapter = get_adapter(model)
    seen: dict[tuple[int, str], list[list[torch.Tensor]]] = {}
    handles = []
    for i in range(adapter.shape().num_layers):
        for part in ("attention", "ffn"):
            module = output_module(adapter, i, part)

            def take_x(mod: Any, args: Any, key: Any = (i, part)) -> None:
                seen.setdefault(key, [[], []])[0].append(args[0].reshape(-1, args[0].shape[-1]).double())

            def take_y(mod: Any, args: Any, out: Any, key: Any = (i, part)) -> None:
                y = out.reshape(-1, out.shape[-1])
                seen[key][1].append((y - mod.bias if mod.bias is not None else y).double())

            # registered before the masking hooks: sees the input before the removed columns are zeroed
            handles.append(module.register_forward_pre_hook(take_x))
            handles.append(module.register_forward_hook(take_y))
    try:
        with torch.no_grad():
            for row in rows:
                ids = torch.tensor([row["input_ids"]])
                if masked:
                    with apply_masks(model, masks, adapter):
                        model(input_ids=ids, attention_mask=torch.ones_like(ids))
                else:
                    model(input_ids=ids, attention_mask=torch.ones_like(ids))
    finally:
        for h in handles:
            h.remove()
    return {k: (torch.cat(v[0]), torch.cat(v[1])) for k, v in seen.items()}


def direct_fit(x_k: torch.Tensor, t: torch.Tensor, bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """min ||t - x_k W^T - b||^2 by a direct least-squares solve of the stacked problem."""
    design = torch.cat([x_k, torch.ones(len(x_k), 1, dtype=x_k.dtype)], dim=1) if bias else x_k
    sol = torch.linalg.lstsq(design, t).solution
    return (sol[:-1].T, sol[-1]) if bias else (sol.T, None)


def squared_error(t: torch.Tensor, x_k: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> float:
    return float((t - x_k @ w.T - (b if b is not None else 0.0)).pow(2).sum())


@pytest.mark.parametrize("target", ["current", "dense"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_refit_is_the_least_squares_solution_on_the_inputs_it_saw(
    family: str,
    target: str,
    family_paths: dict[str, Path],  # noqa: F811 - fixture
) -> None:
    dense = transformers.AutoModel.from_pretrained(family_paths[family], attn_implementation="eager").eval()
    dense.config.use_cache = False
    model = copy.deepcopy(dense)
    masks = random_masks(model, seed=5)
    rows = token_rows(model.config.vocab_size, rows=30)
    config = CompensationConfig(target=target, alpha=0.0, outliers="keep", tokens=10_000)
    result = compensate(model, get_adapter(model), masks, rows, config, pad_token_id=0, batch_size=7)
    assert result.tokens == sum(len(r["input_ids"]) for r in rows)
    # the compensated model, masked, gives every projection the inputs its fit saw (later layers cannot change them)
    seen = projection_io(model, masks, rows, masked=True)
    reference = projection_io(dense, masks, rows, masked=False)
    adapter, dense_adapter = get_adapter(model), get_adapter(dense)
    assert result.refits, "some projection must have been refit"
    for (i, part), (error_before, error_after) in result.refits.items():
        x, _ = seen[(i, part)]
        kept = kept_columns(masks, adapter, i, part)
        original = dense_adapter.weight_out_in(output_module(dense_adapter, i, part)).double()
        t = x @ original.T if target == "current" else reference[(i, part)][1]
        has_bias = output_module(adapter, i, part).bias is not None
        want_w, want_b = direct_fit(x[:, kept], t, has_bias)
        # what the model now holds in the kept columns (and bias) is the refit
        module = output_module(adapter, i, part)
        got_w = adapter.weight_out_in(module)[:, kept].double()
        got_b = module.bias.double() - output_module(dense_adapter, i, part).bias.double() if has_bias else None
        best = squared_error(t, x[:, kept], want_w, want_b)
        # the refit attains the least-squares optimum (float32 batch products: to a relative 1e-4) ...
        assert squared_error(t, x[:, kept], got_w, got_b) <= best * (1 + 1e-4) + 1e-9, (family, i, part)
        # ... and is that solution
        assert torch.allclose(got_w, want_w, atol=2e-2, rtol=2e-2), (family, i, part)
        assert error_after <= error_before + 1e-9


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_layer_whose_kept_neurons_span_the_removed_ones_is_reconstructed_exactly(
    family: str,
    family_paths: dict[str, Path],  # noqa: F811 - fixture
) -> None:
    """Every removed neuron is a copy of a kept one (same FFN-in rows): its output is the kept one's, so the
    refit folds its output-projection column into the kept one and the pruned model equals the dense one."""
    model = transformers.AutoModel.from_pretrained(family_paths[family]).eval()
    adapter = get_adapter(model)
    shape = adapter.shape()
    ffn = shape.layers[0].ffn_size
    half = ffn // 2
    with torch.no_grad():
        for i in range(shape.num_layers):
            for module in adapter.neuron_input_modules(i):
                w = adapter.weight_out_in(module)
                w[half:] = w[:half].clone()
                if module.bias is not None:
                    module.bias[half:] = module.bias[:half].clone()
    dense_out = outputs(model, {"input_ids": torch.tensor([[7, 9, 11, 13, 15, 17]])})
    units = shape.layers[0].num_head_units
    masks = Masks(
        torch.ones(shape.num_layers, units),
        torch.cat([torch.ones(shape.num_layers, half), torch.zeros(shape.num_layers, ffn - half)], dim=1),
    )
    with apply_masks(model, masks):
        plain = outputs(model, {"input_ids": torch.tensor([[7, 9, 11, 13, 15, 17]])})
    assert not torch.allclose(plain, dense_out, atol=1e-3), "masking alone must lose something"
    rows = token_rows(model.config.vocab_size, rows=30)
    config = CompensationConfig(alpha=0.0, outliers="keep")
    compensate(model, adapter, masks, rows, config, pad_token_id=0)
    prune_model(model, masks, adapter)
    after = outputs(model, {"input_ids": torch.tensor([[7, 9, 11, 13, 15, 17]])})
    assert torch.allclose(after, dense_out, atol=1e-4, rtol=1e-4)


def test_solve_reconstructs_a_removed_column_that_kept_ones_span() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g, dtype=torch.float64)
    x[:, 5] = 2.0 * x[:, 0] - 0.5 * x[:, 3]  # the removed column is a combination of kept ones
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    moments = Moments.empty(6, None, torch.device("cpu"))
    moments.add(x, torch.ones(300, dtype=torch.float64))
    kept = torch.arange(5)
    refit = solve(moments, w, None, kept, alpha=0.0)
    assert torch.allclose(x[:, :5] @ refit.weight.T, x @ w.T, atol=1e-8)
    assert refit.error_after < 1e-12 < refit.error_before


def test_statistics_are_streamed_never_a_matrix_of_all_tokens(
    family_paths: dict[str, Path],  # noqa: F811 - fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every addition to the moments is one batch, and the moments' size does not grow with the tokens."""
    calls: list[int] = []
    original = Moments.add

    def counting(self: Moments, x: torch.Tensor, weights: torch.Tensor, y: torch.Tensor | None = None) -> None:
        calls.append(int(x.shape[0]))
        original(self, x, weights, y)

    monkeypatch.setattr(Moments, "add", counting)
    peaks = []
    for rows in (16, 64):
        model = transformers.AutoModel.from_pretrained(family_paths["llama"]).eval()
        masks = random_masks(model, seed=2)
        data = token_rows(model.config.vocab_size, rows=rows)
        calls.clear()
        result = compensate(
            model, get_adapter(model), masks, data, CompensationConfig(target="dense"), pad_token_id=0, batch_size=8
        )
        total = sum(len(r["input_ids"]) for r in data)
        assert calls and max(calls) <= 8 * 12 < total  # one batch of real tokens at a time
        peaks.append(result.peak_statistics_bytes)
    assert peaks[0] == peaks[1] > 0  # O(width^2): four times the tokens, the same memory


def test_a_massive_activation_token_cannot_blow_up_the_fit() -> None:
    g = torch.Generator().manual_seed(1)
    n, width = 400, 8
    x = torch.randn(n, width, generator=g, dtype=torch.float64)
    x[:, 7] = x[:, 0] + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)  # removed column ~ a kept one
    w = torch.randn(3, width, generator=g, dtype=torch.float64)
    sink = torch.zeros(1, width, dtype=torch.float64)
    sink[0, 7], sink[0, 1] = 3000.0, 3000.0  # an attention-sink-like token: huge, in a direction nothing else has
    kept = torch.arange(7)

    def fit(rows: torch.Tensor, handling: str) -> torch.Tensor:
        moments = Moments.empty(width, None, torch.device("cpu"))
        moments.add(rows, token_weights(rows, handling, 10.0))  # type: ignore[arg-type]
        return solve(moments, w, None, kept, alpha=1e-3).weight

    clean = fit(x, "keep")
    with_sink = torch.cat([x, sink])
    protected = fit(with_sink, "downweight")
    swamped = fit(with_sink, "keep")
    assert torch.linalg.norm(protected - clean) / torch.linalg.norm(clean) < 0.05
    assert torch.linalg.norm(swamped - clean) / torch.linalg.norm(clean) > 0.2  # the case the weights exist for
    assert token_weights(with_sink, "exclude", 10.0)[-1] == 0.0


# --------------------------------------------------------------------------- in a prune run


def _config(path: Path, **extra: Any) -> PruneConfig:
    return PruneConfig(
        model={"id": str(path)},
        task=reviews_task(),
        method="random",
        target={"params_reduction": 0.3},
        measure=False,
        **{"sampling": {"max_instances": 24, "max_length": 32, "batch_size": 8}, **extra},
    )


def test_compensation_is_on_by_default_for_structured_methods_and_can_be_turned_off(tiny_bert_path: Path) -> None:
    on = resolve_prune_plan(_config(tiny_bert_path))
    assert on.compensation == CompensationConfig() and on.reads_data and "compensate" in on.stages
    # the budget costed at the token cap: at the inputs' mean (the default) a data-free method reads them
    at_cap = {"max_instances": 24, "max_length": 32, "batch_size": 8, "cost_length": "max"}
    off = resolve_prune_plan(_config(tiny_bert_path, compensation=False, outlier_units=False, sampling=at_cap))
    assert off.compensation is None and "compensate" not in off.stages and not off.reads_data
    assert resolve_prune_plan(_config(tiny_bert_path, reconstruct=True)).compensation is None
    with pytest.raises(Exception, match="ask for one"):
        resolve_prune_plan(_config(tiny_bert_path, reconstruct=True, compensation=True))


def test_prune_with_compensation_is_deterministic_recorded_and_reproduces_the_checkpoint(
    tiny_bert_path: Path, tmp_path: Path
) -> None:
    config = _config(tiny_bert_path, compensation={"tokens": 256})
    first = prune(config, tmp_path / "a")
    report = first.report
    assert report["details"]["compensation"]["refit"]["ffn"], report["details"]["compensation"]
    assert report["details"]["compensation"]["seconds"] >= 0
    assert tmp_path / "a" / COMPENSATION_FILE in first.mask_files
    tensors = load_refit(tmp_path / "a")
    # masks + refit + the dense model = the saved checkpoint
    masks = load_masks(tmp_path / "a")
    dense = transformers.AutoModel.from_pretrained(tiny_bert_path).eval()
    adapter = get_adapter(dense)
    apply_refit(dense, adapter, masks, tensors)
    prune_model(dense, masks, adapter)
    saved = load_pruned(first.model_dir).state_dict()
    for name, value in dense.state_dict().items():
        key = name if name in saved else f"bert.{name}"
        if key in saved:
            assert torch.equal(saved[key], value), name
    # the record reruns to the same weights
    record = json.loads((tmp_path / "a" / "record.json").read_text())
    _, spec = spec_from_record(record)
    assert spec["compensation"]["tokens"] == 256
    again = prune(PruneConfig.model_validate(spec), tmp_path / "b")
    tensors_again = load_refit(tmp_path / "b")
    assert tensors.keys() == tensors_again.keys()
    assert all(torch.equal(tensors[k], tensors_again[k]) for k in tensors)
    assert again.report["details"]["compensation"]["config"] == report["details"]["compensation"]["config"]


def test_uniform_masks_refit_nothing(family_paths: dict[str, Path]) -> None:  # noqa: F811 - fixture
    model = transformers.AutoModel.from_pretrained(family_paths["gpt2"]).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = compensate(
        model, get_adapter(model), Masks.full(get_adapter(model).shape()), token_rows(100), CompensationConfig()
    )
    assert not result.refits
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("family", sorted(f for f in FAMILIES if f in ("gpt2", "llama", "opt", "qwen2")))
@pytest.mark.parametrize("target", ["current", "dense"])
def test_correcting_the_block_output_for_the_ffn_refit_equals_running_the_block_again(
    family: str,
    target: str,
    family_paths: dict[str, Path],  # noqa: F811 - fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pre-norm block's output is corrected for its FFN refit instead of being run again: the same refits."""
    dense = transformers.AutoModel.from_pretrained(family_paths[family]).eval()
    assert get_adapter(dense).ffn_output_adds_to_residual()
    rows = token_rows(dense.config.vocab_size, rows=20)
    config = CompensationConfig(target=target, tokens=10_000)
    fitted = {}
    for shortcut in (True, False):
        model = copy.deepcopy(dense)
        adapter = get_adapter(model)
        if not shortcut:
            monkeypatch.setattr(type(adapter), "ffn_output_adds_to_residual", lambda self: False)
        compensate(model, adapter, random_masks(model, seed=3), rows, config, pad_token_id=0, batch_size=6)
        fitted[shortcut] = model.state_dict()
    for name, value in fitted[False].items():
        assert torch.allclose(fitted[True][name], value, atol=1e-5, rtol=1e-4), name


def test_post_norm_blocks_are_run_again_after_the_ffn_refit(family_paths: dict[str, Path]) -> None:  # noqa: F811
    for family in ("bert", "distilbert", "roberta"):
        model = transformers.AutoModel.from_pretrained(family_paths[family])
        assert not get_adapter(model).ffn_output_adds_to_residual(), family
