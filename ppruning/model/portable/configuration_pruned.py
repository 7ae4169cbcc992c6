"""Configurations of pruned checkpoints whose layers differ in size.

This file is copied next to the weights of such a checkpoint and loaded by
``AutoConfig.from_pretrained(..., trust_remote_code=True)``; it imports only
transformers, never the library that pruned the model, and names no model family.

Each class is the stock configuration of its family under a ``model_type`` of its own
(``pruned_bert``, ``pruned_llama``, ...), made on first use from transformers' class of
the same name without the prefix (``PrunedBertConfig`` from ``BertConfig``). On disk the
stock size fields hold one value per layer (``"intermediate_size": [1536, 1210, 980,
...]``), so a stock class reading the config rejects it instead of building full-size
layers and re-initialising them at random. In memory those fields hold scalars the stock
constructors accept (the widest layer; for heads the count that gives the recorded
``head_dim``) and the per-layer values are in ``layer_num_attention_heads``,
``layer_num_key_value_heads`` (grouped-query families) and ``layer_ffn_size``. Which
fields hold the sizes comes with the config itself: ``pruned_layout["size_fields"]``,
written by the library from the family's adapter.
"""

from __future__ import annotations

from typing import Any

import transformers

PREFIX = "pruned_"
#: The config entry that carries the family's layout and size fields (see the library's ``arch.layout``).
LAYOUT_KEY = "pruned_layout"
_PER_LAYER = ("layer_num_attention_heads", "layer_num_key_value_heads", "layer_ffn_size")


def size_fields_of(values: dict[str, Any]) -> dict[str, str | None] | None:
    """The size fields a config's layout names (``hidden``, ``heads``, ``kv_heads``, ``ffn``), if it has one."""
    layout = values.get(LAYOUT_KEY)
    return layout.get("size_fields") if isinstance(layout, dict) else None


def scalar_sizes(
    values: dict[str, Any], fields: dict[str, str | None] | None
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Split per-layer size lists out of config ``values``: (values with scalars, per-layer lists)."""
    values = dict(values)
    layers: dict[str, list[int]] = {}
    if fields is None:
        return values, layers
    hidden, heads, kv_heads, ffn = fields["hidden"], fields["heads"], fields["kv_heads"], fields["ffn"]
    if isinstance(values.get(ffn), list):
        layers["layer_ffn_size"] = [int(n) for n in values[ffn]]
        values[ffn] = max(layers["layer_ffn_size"])
    if isinstance(values.get(heads), list):
        layers["layer_num_attention_heads"] = [int(n) for n in values[heads]]
        if kv_heads is None:  # the head size is hidden / heads: keep it the recorded one
            values[heads] = int(values[hidden]) // int(values["head_dim"])
        else:
            layers["layer_num_key_value_heads"] = [int(n) for n in values[kv_heads]]
            values[kv_heads] = max(layers["layer_num_key_value_heads"])
            group = layers["layer_num_attention_heads"][0] // layers["layer_num_key_value_heads"][0]
            values[heads] = values[kv_heads] * group
    return values, layers


class _PerLayerSizes:
    """Holds the per-layer sizes; writes them back into the stock fields when the config is saved."""

    stock_type = ""

    def __init__(self, **kwargs: Any) -> None:
        kwargs, layers = scalar_sizes(kwargs, size_fields_of(kwargs))
        super().__init__(**kwargs)  # type: ignore[call-arg]
        for key in _PER_LAYER:
            setattr(self, key, layers.get(key))

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()  # type: ignore[misc]
        fields = size_fields_of(out) or {}
        for key, field in zip(_PER_LAYER, ("heads", "kv_heads", "ffn"), strict=True):
            per_layer = out.pop(key, None)
            if per_layer is not None and fields.get(field) is not None:
                out[fields[field]] = list(per_layer)
        return out


def pruned_config_class(stock: type) -> type:
    """The pruned form of a stock config class (``PrunedBertConfig`` of ``BertConfig``)."""
    return __getattr__("Pruned" + stock.__name__)


def __getattr__(name: str) -> type:
    """``Pruned<Stock>Config``, made from transformers' ``<Stock>Config`` on first use (PEP 562)."""
    if name in globals():
        return globals()[name]
    stock = getattr(transformers, name[len("Pruned") :], None) if name.startswith("Pruned") else None
    if not (isinstance(stock, type) and issubclass(stock, transformers.PretrainedConfig) and stock.model_type):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = type(
        name,
        (_PerLayerSizes, stock),
        {
            "model_type": PREFIX + stock.model_type,
            "stock_type": stock.model_type,
            # in the class's own namespace: transformers makes configs dataclasses, whose generated
            # __init__ would otherwise take the place of the inherited one
            "__init__": _PerLayerSizes.__init__,
            "__module__": __name__,
            "__qualname__": name,
        },
    )
    globals()[name] = cls
    return cls
