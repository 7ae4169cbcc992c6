"""Reconstruction: the least-squares fit is the exact solution, it lowers the layer error,
and scales stored with the masks reproduce the pruned checkpoint (the surgery invariant)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from ppruning.arch import get_adapter
from ppruning.model.checkpoint import load_pruned, save_pruned
from ppruning.model.mask_hooks import apply_masks
from ppruning.model.surgery import prune_model
from ppruning.recovery.reconstruct import ReconstructConfig, _Stats, reconstruct, solve
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from ppruning.units.masks import Masks, load_masks, save_masks
from tests.library.arch_cases import FAMILIES, batch, family_paths, outputs, random_masks  # noqa: F401
from tests.support.reviews import reviews_task


def scaled(model: torch.nn.Module, masks: Masks, seed: int) -> Masks:
    """``masks`` with random scales and, where the projections have biases, random corrections."""
    adapter = get_adapter(model)
    g = torch.Generator().manual_seed(seed)
    hidden = adapter.shape().hidden_size
    layers = masks.num_layers

    def delta(module: torch.nn.Module) -> torch.Tensor | None:
        return torch.randn(layers, hidden, generator=g) * 0.1 if module.bias is not None else None

    return Masks(
        masks.head_mask,
        masks.neuron_mask,
        head_scale=(0.5 + torch.rand(masks.head_mask.shape, generator=g)) * masks.head_mask,
        neuron_scale=(0.5 + torch.rand(masks.neuron_mask.shape, generator=g)) * masks.neuron_mask,
        bias_delta_attention=delta(adapter.head_output_module(0)),
        bias_delta_ffn=delta(adapter.neuron_output_module(0)),
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_pruned_model_with_scales_equals_masked_and_scaled_model(
    family: str,
    family_paths: dict[str, Path],  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    path = family_paths[family]
    model = transformers.AutoModel.from_pretrained(path).eval()
    masks = scaled(model, random_masks(model, seed=3), seed=4)
    inputs = batch(model.config.vocab_size)
    with apply_masks(model, Masks(masks.head_mask, masks.neuron_mask)):
        plain = outputs(model, inputs)
    with apply_masks(model, masks):
        expected = outputs(model, inputs)
    assert not torch.allclose(plain, expected, atol=1e-4), "scales must change the output for the test to mean anything"

    save_masks(masks, tmp_path / "masks")
    prune_model(model, load_masks(tmp_path / "masks"))
    torch.testing.assert_close(outputs(model, inputs), expected, atol=1e-5, rtol=1e-5)
    save_pruned(model, transformers.AutoTokenizer.from_pretrained(path), tmp_path / "pruned")
    torch.testing.assert_close(outputs(load_pruned(tmp_path / "pruned"), inputs), expected, atol=1e-5, rtol=1e-5)


def test_masks_without_scales_read_back_without_scales(tmp_path: Path) -> None:
    masks = Masks(torch.ones(2, 3), torch.ones(2, 5))
    save_masks(masks, tmp_path)
    back = load_masks(tmp_path)
    assert not back.has_scales
    assert back.head_scale is None and back.bias_delta_ffn is None


@pytest.mark.parametrize("bias", [True, False])
def test_solve_matches_an_explicit_ridge_least_squares_fit(bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    n, width, units, d = 300, 2, 5, 4
    x = torch.randn(n, units * width, generator=g, dtype=torch.float64) + 0.3
    w = torch.randn(d, units * width, generator=g).double()  # float32-exact, as the module stores it
    linear = torch.nn.Linear(units * width, d, bias=False)
    linear.weight.data = w.float()
    kept_units = [0, 2, 3]
    cols = torch.tensor([u * width + c for u in kept_units for c in range(width)])
    stats = _Stats.empty(linear.weight, cols)
    y = x @ w.T
    stats.add(x[:150], y[:150])
    stats.add(x[150:], y[150:])
    ridge = 0.05
    fit = solve(stats, width, ridge, bias)

    # the same problem written out: columns = each kept unit's contribution, flattened
    contrib = np.stack(
        [(x[:, u * width : (u + 1) * width] @ w[:, u * width : (u + 1) * width].T).numpy().ravel() for u in kept_units],
        axis=1,
    )
    target = y.numpy().ravel()
    if bias:  # a free bias per output dimension: centre every output dimension over tokens
        contrib = (contrib.reshape(n, d, -1) - contrib.reshape(n, d, -1).mean(0)).reshape(n * d, -1)
        target = (target.reshape(n, d) - target.reshape(n, d).mean(0)).ravel()
    gram = contrib.T @ contrib
    lam = ridge * np.diag(gram).mean()
    expected = np.linalg.solve(gram + lam * np.eye(len(kept_units)), contrib.T @ target + lam)
    np.testing.assert_allclose(fit.scale.numpy(), expected, rtol=1e-8)
    assert fit.error_after < fit.error_before
    if bias:
        s = torch.from_numpy(expected).repeat_interleave(width)
        residual = y - x[:, cols] @ (w[:, cols] * s).T
        torch.testing.assert_close(fit.bias_delta, residual.mean(0))


def _examples(vocab: int, n: int = 24) -> list[dict]:
    g = torch.Generator().manual_seed(5)
    rows = []
    for i in range(n):
        length = 6 + i % 7
        rows.append(
            {"input_ids": torch.randint(5, vocab, (length,), generator=g).tolist(), "attention_mask": [1] * length}
        )
    return rows


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_reconstruction_lowers_every_layers_error_and_keeps_full_masks_exact(
    family: str,
    family_paths: dict[str, Path],  # noqa: F811 - fixture
) -> None:
    model = transformers.AutoModel.from_pretrained(family_paths[family]).eval()
    adapter = get_adapter(model)
    examples = _examples(model.config.vocab_size)
    config = ReconstructConfig(tokens=200, ridge=1e-3)
    fitted = reconstruct(model, adapter, random_masks(model, seed=2), examples, config)
    for layer in fitted.layers:
        assert layer["attention_error_after"] <= layer["attention_error_before"] + 1e-9
        assert layer["ffn_error_after"] <= layer["ffn_error_before"] + 1e-9
    assert fitted.tokens >= 200
    if family == "llama":  # no bias on o_proj / down_proj: scales only
        assert fitted.masks.bias_delta_attention is None and fitted.masks.bias_delta_ffn is None
    full = Masks.full(adapter.shape())
    exact = reconstruct(model, adapter, full, examples, config)
    torch.testing.assert_close(exact.masks.head_scale, torch.ones_like(full.head_mask), atol=1e-6, rtol=0)
    assert max(r["ffn_error_after"] for r in exact.layers) < 1e-10


def test_prune_with_reconstruct_reports_errors_and_masks_reproduce_the_checkpoint(
    tiny_bert_path: Path, tmp_path: Path
) -> None:
    config = PruneConfig(
        model={"id": str(tiny_bert_path)},
        task=reviews_task(),
        target={"flops_reduction": 0.3},
        params={"lambda_val": 1},
        sampling={"sampling_tokens": 40},
        reconstruct={"tokens": 300},
        seed=11,
        measure=False,
    )
    result = prune(config, tmp_path / "out")
    block = result.report["details"]["reconstruction"]
    assert block["tokens"] >= 300 and len(block["layers"]) == 3
    assert block["mean"]["ffn_error_after"] < block["mean"]["ffn_error_before"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["reconstruct"]["tokens"] == 300

    masks = load_masks(tmp_path / "out")
    assert masks.has_scales
    fresh = transformers.AutoModel.from_pretrained(tiny_bert_path).eval()
    prune_model(fresh, masks)
    saved = load_pruned(tmp_path / "out" / "model", head="base")
    for (name, a), (_, b) in zip(fresh.state_dict().items(), saved.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_reconstruct_is_off_by_default_and_makes_any_method_read_inputs_when_asked(tiny_bert_path: Path) -> None:
    from ppruning.run.plan import resolve_prune_plan

    base = {"model": {"id": str(tiny_bert_path)}, "task": reviews_task(), "target": {"flops_reduction": 0.2}}
    default = resolve_prune_plan(PruneConfig(**base))
    assert default.reconstruct is None and "reconstruct" not in default.stages
    at_cap = {"cost_length": "max"}  # at the inputs' mean length (the default) every method reads them
    off = {"compensation": False, "outlier_units": False}  # each reads inputs too
    magnitude = resolve_prune_plan(PruneConfig(**base, method="magnitude", **off, sampling=at_cap))
    assert magnitude.reconstruct is None and not magnitude.reads_data
    asked = resolve_prune_plan(PruneConfig(**base, method="magnitude", reconstruct=True))
    assert asked.reads_data and "reconstruct" in asked.stages and asked.reconstruct.sequential
    assert resolve_prune_plan(PruneConfig(**base, reconstruct=False)).reconstruct is None


def test_reported_errors_are_the_errors_of_the_applied_scales_on_the_calibration_tokens(
    family_paths: dict[str, Path],  # noqa: F811 - fixture
) -> None:
    """Recompute each projection's error from captured dense inputs and the stored scales and corrections."""
    model = transformers.AutoModel.from_pretrained(family_paths["bert"]).eval()
    adapter = get_adapter(model)
    examples = _examples(model.config.vocab_size)
    fitted = reconstruct(model, adapter, random_masks(model, seed=2), examples, ReconstructConfig(tokens=10_000))
    masks = fitted.masks
    captured: dict[int, torch.Tensor] = {}
    hook = adapter.neuron_output_module(1).register_forward_pre_hook(
        lambda m, a: captured.setdefault(len(captured), a[0])
    )
    with torch.no_grad():
        for ex in examples:
            model(input_ids=torch.tensor([ex["input_ids"]]))
    hook.remove()
    x = torch.cat([t[0] for t in captured.values()]).double()
    w = adapter.neuron_output_module(1).weight.detach().double()
    dense = x @ w.T
    pruned = (x * masks.neuron_columns(1).double()) @ w.T + masks.bias_delta_ffn[1].double()
    plain = (x * masks.neuron_mask[1].double()) @ w.T
    energy = (dense**2).sum()
    assert float(((dense - pruned) ** 2).sum() / energy) == pytest.approx(fitted.layers[1]["ffn_error_after"], rel=5e-3)
    assert float(((dense - plain) ** 2).sum() / energy) == pytest.approx(fitted.layers[1]["ffn_error_before"], rel=5e-3)
