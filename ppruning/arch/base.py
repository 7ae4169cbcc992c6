"""The interface every architecture adapter implements.

An adapter knows where a model family keeps its prunable units and how to cut them;
everything else (collection, clustering, budgets, masking, surgery orchestration,
reloading) is written once against this interface. Adding a family (OPT, Llama-style
decoders with grouped-query attention) is one new module under ``ppruning/arch/``.

Units: a *head unit* is an attention head, or for grouped-query attention a KV group
with its query heads; its output is ``head_unit_width`` consecutive input columns of the
attention output projection. A *neuron* is one FFN intermediate channel, one input
column of the FFN down projection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import nn


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

    @property
    def num_layers(self) -> int:
        return len(self.layers)


class ArchAdapter(ABC):
    """Wraps one loaded model of a supported family (base model or any task head)."""

    #: ``config.model_type`` values this adapter handles.
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @abstractmethod
    def shape(self) -> ModelShape:
        """Current per-layer unit counts (reflects surgery already done)."""

    @abstractmethod
    def head_output_module(self, layer: int) -> nn.Module:
        """The attention output projection of ``layer``; its *input* holds the head outputs."""

    @abstractmethod
    def neuron_output_module(self, layer: int) -> nn.Module:
        """The FFN down projection of ``layer``; its *input* holds the neuron outputs."""

    @abstractmethod
    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        """Physically keep only the head units ``keep`` (sorted indices) of ``layer``."""

    @abstractmethod
    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        """Physically keep only the FFN neurons ``keep`` (sorted indices) of ``layer``."""

    @abstractmethod
    def record_structure(self) -> None:
        """Write the per-layer structure into ``model.config`` so the checkpoint reloads."""
