"""Shared cases for the architecture tests: the tiny model of every registered family, the
task heads each supports, seeded masks that keep different counts per layer, a padded batch.

The families are read from the adapter registry (a decoder also gets the causal-LM head),
so a new adapter is covered by every test that uses these cases without editing them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppruning.arch import adapter_class, get_adapter, supported_model_types
from ppruning.units.masks import Masks
from tests.support.registry_models import save_tiny

HEADS = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "causal-lm": "AutoModelForCausalLM",
}
ENCODER_HEADS = ("base", "sequence-classification", "question-answering")
DECODER_HEADS = (*ENCODER_HEADS, "causal-lm")
#: Every registered family (``config.model_type``) -> the task heads tested on it.
FAMILIES = {t: DECODER_HEADS if adapter_class(t).is_decoder else ENCODER_HEADS for t in supported_model_types()}
CASES = [(family, head) for family, heads in FAMILIES.items() for head in heads]


@pytest.fixture(scope="module")
def family_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {family: save_tiny(family, tmp_path_factory.mktemp(f"tiny-{family}")) for family in FAMILIES}


def random_masks(model: torch.nn.Module, seed: int) -> Masks:
    """Masks keeping a different number of head units and neurons in every layer."""
    shape = get_adapter(model).shape()
    g = torch.Generator().manual_seed(seed)
    units, ffn = shape.layers[0].num_head_units, shape.layers[0].ffn_size
    head_mask = torch.zeros(shape.num_layers, units)
    neuron_mask = torch.zeros(shape.num_layers, ffn)
    for layer in range(shape.num_layers):
        keep_h = 1 + (layer % units)  # 1, 2, 3, ... head units
        keep_n = max(1, ffn - 7 * (layer + 1))
        head_mask[layer, torch.randperm(units, generator=g)[:keep_h]] = 1
        neuron_mask[layer, torch.randperm(ffn, generator=g)[:keep_n]] = 1
    return Masks(head_mask, neuron_mask)


def batch(vocab_size: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding in one row
    return {"input_ids": ids, "attention_mask": mask}


def outputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "start_logits"):
        return torch.cat([out.start_logits, out.end_logits], dim=-1)
    if hasattr(out, "logits"):
        return out.logits
    return out.last_hidden_state
