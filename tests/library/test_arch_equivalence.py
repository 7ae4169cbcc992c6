"""The surgery invariant, for every adapter and every task head it supports:
the physically pruned model equals the full model with the same units masked, and so
does the pruned checkpoint after save_pruned -> load_pruned."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from ppruning.arch import get_adapter
from ppruning.model.checkpoint import load_pruned, save_pruned
from ppruning.model.mask_hooks import apply_masks
from ppruning.model.surgery import prune_model
from tests.library.arch_cases import CASES, HEADS, batch, family_paths, outputs, random_masks  # noqa: F401


def _randomise_fresh_task_head(model: torch.nn.Module) -> None:
    """A task head missing from the checkpoint starts near zero (std 0.02), so masking can move
    its logits by less than the tolerance; unit-scale weights make the invariant observable."""
    if model.base_model is model:
        return
    g = torch.Generator().manual_seed(0)
    prefix = model.base_model_prefix + "."
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith(prefix) and "lm_head" not in name and param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=g))


@pytest.mark.parametrize(("family", "head"), CASES, ids=[f"{f}-{h}" for f, h in CASES])
def test_pruned_model_equals_masked_model_and_survives_reload(
    family: str,
    head: str,
    family_paths: dict[str, Path],  # noqa: F811 - fixture
    tmp_path: Path,
) -> None:
    path = family_paths[family]
    torch.manual_seed(0)  # a task head missing from the checkpoint is initialised identically
    model = getattr(transformers, HEADS[head]).from_pretrained(path).eval()
    _randomise_fresh_task_head(model)
    masks = random_masks(model, seed=CASES.index((family, head)))
    inputs = batch(model.config.vocab_size)

    full = outputs(model, inputs)
    with apply_masks(model, masks):
        masked = outputs(model, inputs)
    assert not torch.allclose(full, masked, atol=1e-4), "masks must change the output for the test to mean anything"

    prune_model(model, masks)
    shape = get_adapter(model).shape()
    assert [la.num_head_units for la in shape.layers] == masks.head_counts()
    assert [la.ffn_size for la in shape.layers] == masks.neuron_counts()
    torch.testing.assert_close(outputs(model, inputs), masked, atol=1e-5, rtol=1e-5)

    save_pruned(model, transformers.AutoTokenizer.from_pretrained(path), tmp_path / "pruned")
    reloaded = load_pruned(tmp_path / "pruned")
    assert type(reloaded) is type(model)
    assert not reloaded.training
    torch.testing.assert_close(outputs(reloaded, inputs), masked, atol=1e-5, rtol=1e-5)
