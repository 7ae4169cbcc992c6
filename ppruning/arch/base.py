"""The interface every architecture adapter implements, written once over the family's declared layout.

An adapter holds every fact about one model family: where its blocks keep the prunable
projections and which attributes a cut updates (:class:`~ppruning.arch.layout.BlockLayout`),
which config fields hold its sizes (:class:`~ppruning.arch.layout.SizeFields`), the shape a
config describes, whether it is a decoder, whether its config carries an explicit head size,
how its position ids are offset, how its weights are laid out (``weight_out_in``) and how
its masked-LM head is read. Everything else (collection, clustering, budgets, masking,
surgery, the methods, the portable checkpoint format) asks the adapter. Adding a family is
one new module under ``ppruning/arch/`` (listed in ``ppruning/arch/__init__.py``) and a tiny
test model.

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

from ppruning.arch.layout import BlockLayout, SizeFields
from ppruning.arch.slicing import (
    keep_attention_units,
    keep_conv1d_inputs,
    keep_conv1d_outputs,
    keep_linear_inputs,
    keep_linear_outputs,
    unit_columns,
)
from ppruning.errors import UnsupportedModelError

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
        2*L^2*q_width; for MHA this is 4*L*d*d_h + 2*L^2*d_h (docs/algorithms.md, shared vocabulary).
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

    A subclass declares its family's facts (the class attributes below) and
    :meth:`shape_from_config`; everything else is read from the modules through the
    declared :attr:`layout`. The backbone is found generically through ``model.base_model``
    (the HF ``base_model_prefix``), so the same adapter serves ``AutoModel`` and every
    ``AutoModelFor...`` head.
    """

    #: ``config.model_type`` values this adapter handles.
    model_types: ClassVar[tuple[str, ...]] = ()
    #: Where a block keeps its projections, and what a cut updates.
    layout: ClassVar[BlockLayout]
    #: The config fields that hold the sizes (the portable config rewrites them).
    size_fields: ClassVar[SizeFields]
    #: Llama-style act(gate)*up FFN.
    gated_ffn: ClassVar[bool] = False
    #: A causal decoder (a language model's FFN: what PruneNet slices).
    is_decoder: ClassVar[bool] = False
    #: The attention reads its head size from the config (``head_dim``), so a stock config can
    #: describe fewer heads at the same head size.
    explicit_head_dim: ClassVar[bool] = False
    #: Positions the position embeddings reserve before the first token (RoBERTa: 2).
    position_offset: ClassVar[int] = 0
    #: :meth:`mlm_scores` reads this family's masked-LM head.
    reads_mlm_head: ClassVar[bool] = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.backbone: nn.Module = getattr(model, "base_model", model)

    # ------------------------------------------------------------------ from a config alone

    @classmethod
    @abstractmethod
    def shape_from_config(cls, config: Any) -> ModelShape:
        """The unpruned shape a config describes (no model built): for cheap validation."""

    @classmethod
    def block_matrices(cls) -> dict[str, str] | None:
        """The six prunable matrices of a block by type (Q, K, V, attention output, FFN in, FFN out),
        as paths in the block; None where they are not six separate projections (fused QKV, gated FFN)."""
        layout = cls.layout
        if layout.qkv is not None or len(layout.ffn_in) != 1:
            return None
        assert layout.query is not None and layout.key is not None and layout.value is not None
        return {
            "query": layout.query,
            "key": layout.key,
            "value": layout.value,
            "attn_out": layout.attn_out,
            "ffn_in": layout.ffn_in[0],
            "ffn_out": layout.ffn_out,
        }

    # ------------------------------------------------------------------ where the units live

    def layers(self) -> Sequence[nn.Module]:
        """The transformer blocks, in order."""
        return self.backbone.get_submodule(self.layout.blocks)

    def _module(self, layer: int, path: str) -> nn.Module:
        return self.layers()[layer].get_submodule(path)

    def hidden_size(self) -> int:
        """Model width d."""
        return int(getattr(self.model.config, self.size_fields.hidden))

    def layer_shape(self, layer: int) -> LayerShape:
        """Current shape of one layer, read from its modules (right before and after surgery)."""
        block, layout = self.layers()[layer], self.layout
        head_dim = int(_attribute(block, layout.head_dim))
        if layout.qkv is not None:
            q_width = kv_width = self._out_features(block.get_submodule(layout.qkv)) // 3
        else:
            assert layout.query is not None and layout.key is not None
            q_width = self._out_features(block.get_submodule(layout.query))
            kv_width = self._out_features(block.get_submodule(layout.key))
        group = q_width // kv_width
        ffn = self._out_features(block.get_submodule(layout.ffn_in[0]))
        return LayerShape(kv_width // head_dim, group * head_dim, group, head_dim, ffn)

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
        """Whether the key projection (whose rows a head unit owns) has a bias."""
        return getattr(self._module(0, self.layout.key or self.layout.qkv or ""), "bias", None) is not None

    def ffn_bias(self) -> bool:
        """Whether the FFN-in projection has a bias."""
        return getattr(self._module(0, self.layout.ffn_in[0]), "bias", None) is not None

    #: Per unit type (``attention``, ``ffn``): the config flag that gives this family's projections
    #: biases in the stock modelling code, and the block paths it governs (all of them get one).
    bias_flags: ClassVar[dict[str, tuple[str, tuple[str, ...]]]] = {}

    def add_output_bias(self, kind: str) -> bool:
        """Give the output projection of unit type ``kind`` a (zero) bias the stock config describes.

        Sets the family's flag (:attr:`bias_flags`) and adds zero biases to every projection it
        governs, so the model computes the same and a stock config rebuilds it. False where the
        family (or this config: Mistral shares Llama's adapter, not its flags) has no such flag.
        """
        if kind not in self.bias_flags or not hasattr(self.model.config, self.bias_flags[kind][0]):
            return False
        flag, paths = self.bias_flags[kind]
        for block in self.layers():
            for path in paths:
                module = block.get_submodule(path)
                if module.bias is None:
                    rows = self.weight_out_in(module).shape[0]
                    weight = module.weight
                    module.bias = nn.Parameter(torch.zeros(rows, dtype=weight.dtype, device=weight.device))
        setattr(self.model.config, flag, True)
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

    def ffn_output_adds_to_residual(self) -> bool:
        """Whether a block's output is its FFN output projection's output added to the residual stream,
        with nothing after it (pre-norm blocks); post-norm blocks (BERT) normalise the sum.

        Compensation then corrects a block's output for a refit of that projection instead of
        running the block again.
        """
        return False

    def head_output_module(self, layer: int) -> nn.Module:
        """The attention output projection of ``layer``; its *input* holds the head outputs."""
        return self._module(layer, self.layout.attn_out)

    def neuron_output_module(self, layer: int) -> nn.Module:
        """The FFN down projection of ``layer``; its *input* holds the neuron outputs."""
        return self._module(layer, self.layout.ffn_out)

    def neuron_input_modules(self, layer: int) -> list[nn.Module]:
        """The FFN-in projection(s) of ``layer`` (Llama: gate and up); each output row is a neuron."""
        return [self._module(layer, path) for path in self.layout.ffn_in]

    # ------------------------------------------------------------------ weight layout

    def stores_transposed(self, module: nn.Module) -> bool:
        """Whether ``module`` keeps its weight as [in, out] (GPT-2's ``Conv1D``), not ``nn.Linear``'s [out, in]."""
        return self.layout.transposed and type(module) is type(self.head_output_module(0))

    def is_projection(self, module: nn.Module) -> bool:
        """Whether ``module`` is a dense projection (an ``nn.Linear``, or this family's transposed kind)."""
        return isinstance(module, nn.Linear) or self.stores_transposed(module)

    def weight_out_in(self, module: nn.Module) -> torch.Tensor:
        """A projection's weight as [out_features, in_features], whatever the layout: a view, never a copy."""
        return module.weight.T if self.stores_transposed(module) else module.weight

    def _out_features(self, module: nn.Module) -> int:
        return int(self.weight_out_in(module).shape[0])

    # ------------------------------------------------------------------ the masked-LM head

    def mlm_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """The masked-LM head's vocabulary scores for hidden states (the model is the family's ``...ForMaskedLM``)."""
        raise UnsupportedModelError(
            f"no masked-LM head reader for model type {self.model.config.model_type!r}", field="model.id"
        )

    # ------------------------------------------------------------------ surgery

    def _keep_outputs(self, module: nn.Module, index: torch.Tensor) -> None:
        (keep_conv1d_outputs if self.stores_transposed(module) else keep_linear_outputs)(module, index)

    def _keep_inputs(self, module: nn.Module, index: torch.Tensor) -> None:
        (keep_conv1d_inputs if self.stores_transposed(module) else keep_linear_inputs)(module, index)

    def prune_head_units(self, layer: int, keep: Sequence[int]) -> None:
        """Physically keep only the head units ``keep`` (sorted indices) of ``layer``.

        A unit's query columns are also its output-projection inputs; its key and value columns
        are the KV group's (the same as the query columns without grouped-query attention).
        """
        block, layout, la = self.layers()[layer], self.layout, self.layer_shape(layer)
        q_cols = unit_columns(keep, la.head_unit_width)
        kv_cols = unit_columns(keep, la.head_dim)
        out = block.get_submodule(layout.attn_out)
        if layout.qkv is not None:  # q | k | v side by side: each block loses the same columns
            width = la.num_head_units * la.head_unit_width
            self._keep_outputs(block.get_submodule(layout.qkv), torch.cat([q_cols, q_cols + width, q_cols + 2 * width]))
            self._keep_inputs(out, q_cols)
        else:
            assert layout.query is not None and layout.key is not None and layout.value is not None
            query, key, value = (block.get_submodule(p) for p in (layout.query, layout.key, layout.value))
            keep_attention_units(query, key, value, out, q_cols, kv_cols)
        _set_attributes(block, layout.head_count_attrs, len(keep) * la.query_heads_per_unit)
        _set_attributes(block, layout.head_width_attrs, int(q_cols.numel()))

    def prune_neurons(self, layer: int, keep: Sequence[int]) -> None:
        """Physically keep only the FFN neurons ``keep`` (sorted indices) of ``layer``."""
        block, layout = self.layers()[layer], self.layout
        cols = unit_columns(keep, 1)
        for path in layout.ffn_in:
            self._keep_outputs(block.get_submodule(path), cols)
        self._keep_inputs(block.get_submodule(layout.ffn_out), cols)
        _set_attributes(block, layout.ffn_size_attrs, int(cols.numel()))

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


def _attribute(root: nn.Module, path: str) -> Any:
    owner, _, name = path.rpartition(".")
    return getattr(root.get_submodule(owner) if owner else root, name)


def _set_attributes(root: nn.Module, paths: Sequence[str], value: int) -> None:
    for path in paths:
        owner, _, name = path.rpartition(".")
        setattr(root.get_submodule(owner) if owner else root, name, value)
