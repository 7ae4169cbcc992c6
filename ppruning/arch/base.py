"""The interface every architecture adapter implements.

An adapter knows where a model family keeps its prunable units and how to cut them;
everything else (collection, clustering, budgets, masking, surgery orchestration,
reloading) is written once against this interface. Adding a family (OPT, Llama-style
decoders with grouped-query attention) is one new module under ``ppruning/arch/``.

Units: a *head unit* is an attention head, or for grouped-query attention a KV group
with its query heads; its output is ``head_unit_width`` consecutive input columns of the
attention output projection. A *neuron* is one FFN intermediate channel, one input
column of the FFN down projection.

Adapters read the current shape from the modules themselves (not from the config), so
``shape()`` is right before surgery, after surgery, and after :func:`ppruning.load_pruned`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

#: The key under which the per-layer structure is written into ``model.config``.
STRUCTURE_KEY = "ppruning_structure"


@dataclass(frozen=True)
class LayerShape:
    """The current (possibly already pruned) shape of one layer."""

    num_head_units: int
    head_unit_width: int  # input columns of the output projection per head unit
    query_heads_per_unit: int  # 1 for MHA; query heads per KV group for GQA
    head_dim: int
    ffn_size: int


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int
    layers: tuple[LayerShape, ...]
    gated_ffn: bool  # Llama-style act(gate)*up: a neuron costs 3*d instead of 2*d
    attention_bias: bool = True  # Q, K, V carry biases (a head unit's bias parameters count)
    ffn_bias: bool = True  # FFN-in (and gate/up) carry biases

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def is_uniform(self) -> bool:
        """True when every layer has the same head-unit count and FFN size (an unpruned model)."""
        return len({(la.num_head_units, la.ffn_size) for la in self.layers}) <= 1

    def head_unit_params(self, layer: int = 0) -> int:
        """Parameters one head unit of ``layer`` owns: its Q, K, V rows (+ biases) and O columns."""
        la = self.layers[layer]
        q_width = la.query_heads_per_unit * la.head_dim
        weights = self.hidden_size * (2 * q_width + 2 * la.head_dim)  # q + o, k + v
        biases = (q_width + 2 * la.head_dim) if self.attention_bias else 0
        return weights + biases

    def neuron_params(self, layer: int = 0) -> int:
        """Parameters one FFN neuron owns: its FFN-in row(s) (+ bias) and FFN-out column."""
        n_in = 2 if self.gated_ffn else 1
        return self.hidden_size * (n_in + 1) + (n_in if self.ffn_bias else 0)

    def head_unit_macs(self, seq_len: float, layer: int = 0) -> float:
        """Multiply-accumulates of one head unit per sequence of ``seq_len`` tokens.

        Projections 2*L*d*(q_width + d_h) (Q, O and K, V), scores and weighted sum
        2*L^2*q_width; for MHA this is ALGORITHMS.md's 4*L*d*d_h + 2*L^2*d_h.
        """
        la = self.layers[layer]
        q_width = la.query_heads_per_unit * la.head_dim
        d = self.hidden_size
        return 2 * seq_len * d * (q_width + la.head_dim) + 2 * seq_len**2 * q_width

    def neuron_macs(self, seq_len: float) -> float:
        """Multiply-accumulates of one FFN neuron per sequence: 2*L*d (3*L*d gated)."""
        return (3 if self.gated_ffn else 2) * seq_len * self.hidden_size

    def structure(self) -> dict[str, list[int]]:
        """The per-layer record written to the config and ``pruning.json``."""
        return {
            "num_head_units": [la.num_head_units for la in self.layers],
            "num_attention_heads": [la.num_head_units * la.query_heads_per_unit for la in self.layers],
            "ffn_size": [la.ffn_size for la in self.layers],
        }


class ArchAdapter(ABC):
    """Wraps one loaded model of a supported family (base model or any task head).

    Subclasses implement the ``_``-free abstract methods below; the backbone is found
    generically through ``model.base_model`` (the HF ``base_model_prefix``), so the same
    adapter serves ``AutoModel`` and every ``AutoModelFor...`` head.
    """

    #: ``config.model_type`` values this adapter handles.
    model_types: ClassVar[tuple[str, ...]] = ()
    #: Llama-style act(gate)*up FFN.
    gated_ffn: ClassVar[bool] = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.backbone: nn.Module = getattr(model, "base_model", model)

    # ------------------------------------------------------------------ from a config alone

    @classmethod
    @abstractmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        """The unpruned shape a config describes (no model built): for cheap validation."""

    # ------------------------------------------------------------------ where the units live

    @abstractmethod
    def layers(self) -> Sequence[nn.Module]:
        """The transformer blocks, in order."""

    @abstractmethod
    def layer_shape(self, layer: int) -> LayerShape:
        """Current shape of one layer, read from its modules."""

    @abstractmethod
    def hidden_size(self) -> int:
        """Model width d."""

    def shape(self) -> ModelShape:
        """Current per-layer unit counts (reflects surgery already done)."""
        return ModelShape(
            hidden_size=self.hidden_size(),
            layers=tuple(self.layer_shape(i) for i in range(len(self.layers()))),
            gated_ffn=self.gated_ffn,
            attention_bias=self.attention_bias(),
            ffn_bias=self.ffn_bias(),
        )

    def attention_bias(self) -> bool:
        return True

    def position_ids(self, attention_mask: Any) -> Any:
        """Position ids that ignore padding, for left-padded batches (None: pass nothing).

        HF models number positions 0..T-1 regardless of padding unless told otherwise;
        with left padding a real token's output then depends on how much padding precedes
        it. Pass these (count of real tokens before each position) to make it not so.
        Right padding needs nothing. Families that derive positions from the input ids
        themselves (RoBERTa) return None.
        """
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def ffn_bias(self) -> bool:
        return True

    # ------------------------------------------------------------------ weight layout

    def stores_transposed(self, module: nn.Module) -> bool:
        """Whether ``module`` keeps its weight as [in, out] (GPT-2's ``Conv1D``), not ``nn.Linear``'s [out, in]."""
        return False

    def is_projection(self, module: nn.Module) -> bool:
        """Whether ``module`` is a dense projection (an ``nn.Linear``, or this family's transposed kind)."""
        return isinstance(module, nn.Linear) or self.stores_transposed(module)

    def weight_out_in(self, module: nn.Module) -> torch.Tensor:
        """A projection's weight as [out_features, in_features], whatever the layout: a view, never a copy."""
        return module.weight.T if self.stores_transposed(module) else module.weight

    @abstractmethod
    def head_output_module(self, layer: int) -> nn.Module:
        """The attention output projection of ``layer``; its *input* holds the head outputs."""

    @abstractmethod
    def neuron_output_module(self, layer: int) -> nn.Module:
        """The FFN down projection of ``layer``; its *input* holds the neuron outputs."""

    @abstractmethod
    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        """The FFN-in projection(s) of ``layer`` (Llama: gate and up); each output row is a neuron."""

    # ------------------------------------------------------------------ surgery

    @abstractmethod
    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        """Physically keep only the head units ``keep`` (sorted indices) of ``layer``."""

    @abstractmethod
    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        """Physically keep only the FFN neurons ``keep`` (sorted indices) of ``layer``."""

    def record_structure(self, original: ModelShape | None = None) -> dict[str, Any]:
        """Write the per-layer structure into ``model.config`` so the checkpoint reloads.

        The config's own head/FFN sizes stay the original ones (the model is rebuilt
        full-size from it and then cut); ``ppruning_structure`` holds the per-layer counts.
        """
        record: dict[str, Any] = dict(self.shape().structure())
        previous = getattr(self.model.config, STRUCTURE_KEY, None) or {}
        if original is not None:
            record["original"] = original.structure()
        elif "original" in previous:
            record["original"] = previous["original"]
        setattr(self.model.config, STRUCTURE_KEY, record)
        return record
