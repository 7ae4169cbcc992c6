"""Masking hooks, and the padding invariance that collection relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from ppruning.arch import ArchAdapter, get_adapter
from ppruning.model.mask_hooks import apply_masks
from ppruning.units.masks import Masks
from tests.library.arch_cases import family_paths  # noqa: F401 - fixture


def hidden(model: torch.nn.Module, **inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).last_hidden_state


def test_all_ones_masks_change_nothing_and_hooks_go_away_on_exit(tiny_bert_path: Path) -> None:
    model = transformers.AutoModel.from_pretrained(tiny_bert_path).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    full = hidden(model, input_ids=ids)
    with apply_masks(model, Masks(torch.ones(3, 4), torch.ones(3, 64))):
        torch.testing.assert_close(hidden(model, input_ids=ids), full)
    zero_head = Masks(torch.ones(3, 4), torch.ones(3, 64))
    zero_head.head_mask[0, 0] = 0
    with pytest.raises(RuntimeError, match="boom"), apply_masks(model, zero_head):
        assert not torch.allclose(hidden(model, input_ids=ids), full)
        raise RuntimeError("boom")
    torch.testing.assert_close(hidden(model, input_ids=ids), full)  # removed despite the exception
    adapter = get_adapter(model)
    assert not adapter.head_output_module(0)._forward_pre_hooks


def test_masking_a_head_zeroes_exactly_its_columns_of_the_output_projection_input(tiny_llama_path: Path) -> None:
    """For GQA a unit is a KV group: its query heads' columns side by side."""
    model = transformers.AutoModel.from_pretrained(tiny_llama_path).eval()
    adapter = get_adapter(model)
    seen: list[torch.Tensor] = []
    masks = Masks(torch.ones(3, 2), torch.ones(3, 64))
    masks.head_mask[1, 0] = 0
    with apply_masks(model, masks):
        # registered after the mask hook, so it sees what o_proj receives
        hook = adapter.head_output_module(1).register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        hidden(model, input_ids=torch.tensor([[40, 41, 42, 43]]))  # not the pad id (zero embedding)
    hook.remove()
    x = seen[0]  # what o_proj received, after the mask hook
    assert torch.all(x[..., :16] == 0) and torch.all(x[..., 16:] != 0)


def real_token_outputs(model: torch.nn.Module, adapter: ArchAdapter, **inputs: torch.Tensor) -> list[torch.Tensor]:
    """Head and neuron outputs (what collection captures) plus the final hidden states."""
    captured: list[torch.Tensor] = []
    handles = [
        module.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
        for i in range(len(adapter.layers()))
        for module in (adapter.head_output_module(i), adapter.neuron_output_module(i))
    ]
    try:
        captured.append(hidden(model, **inputs))
    finally:
        for h in handles:
            h.remove()
    return captured


@pytest.mark.parametrize("family", ["bert", "gpt2", "roberta"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_real_tokens_do_not_depend_on_padding(family: str, side: str, family_paths: dict[str, Path]) -> None:  # noqa: F811
    """A real token's activations are the same alone and in a padded batch.

    Right padding needs nothing; left padding needs position ids that skip the padding
    (ArchAdapter.position_ids), otherwise absolute positions shift.
    """
    model = transformers.AutoModel.from_pretrained(family_paths[family]).eval()
    adapter = get_adapter(model)
    pad = model.config.pad_token_id
    short = torch.tensor([[5, 17, 23, 9]])
    longer = torch.tensor([[5, 30, 31, 32, 33, 34, 9]])
    n_pad = longer.shape[1] - short.shape[1]
    padding = torch.full((1, n_pad), pad)
    first = torch.cat([short, padding], 1) if side == "right" else torch.cat([padding, short], 1)
    ids = torch.cat([first, longer])
    mask = (ids != pad).long()
    real = slice(0, 4) if side == "right" else slice(n_pad, n_pad + 4)
    position_ids = adapter.position_ids(mask) if side == "left" else None
    extra = {"position_ids": position_ids} if position_ids is not None else {}

    alone = real_token_outputs(model, adapter, input_ids=short)
    batched = real_token_outputs(model, adapter, input_ids=ids, attention_mask=mask, **extra)
    for a, b in zip(alone, batched, strict=True):
        torch.testing.assert_close(b[0:1, real], a, atol=1e-5, rtol=1e-5)
