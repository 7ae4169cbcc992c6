"""The ``config.json`` of a pruned checkpoint: stock where the structure allows, else self-describing.

Stock: every layer keeps the same FFN size and all its heads (or, for the families whose
config carries an explicit ``head_dim``, the same number of KV groups). Then the stock
size fields simply hold the pruned sizes and any stock loader builds the exact shapes.

Self-describing: the config gets ``model_type`` ``pruned_<family>``, per-layer lists in
the stock size fields, the family's layout and size fields (``pruned_layout``, from its
adapter), an ``auto_map`` to the two shipped files (copied next to it), and
``architectures`` naming the pruned classes. Without ``trust_remote_code`` the Auto
classes and ``pipeline()`` then refuse the unknown model type before any weight is
read; a stock class rejects the per-layer lists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ppruning.arch.base import ArchAdapter, ModelShape
from ppruning.arch.layout import LAYOUT_KEY
from ppruning.arch.registry import adapter_class, supported_model_types
from ppruning.model.portable.configuration_pruned import PREFIX, scalar_sizes, size_fields_of

HERE = Path(__file__).parent
SHIPPED_FILES = ("configuration_pruned.py", "modeling_pruned.py")
#: The Auto classes a self-describing checkpoint maps, with the transformers mapping that names each
#: family's class; masked-LM heads for encoders, causal-LM heads for decoders.
AUTO_MAPPINGS = {
    "AutoModel": ("MODEL_MAPPING_NAMES", None),
    "AutoModelForCausalLM": ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", True),
    "AutoModelForSequenceClassification": ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", None),
    "AutoModelForQuestionAnswering": ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", None),
    "AutoModelForTokenClassification": ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", None),
    "AutoModelForMaskedLM": ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", False),
}


def portable_adapter(stock_type: str) -> type[ArchAdapter] | None:
    """The adapter of a family the portable format knows (every registered one), else None."""
    return adapter_class(stock_type) if stock_type in supported_model_types() else None


def is_standard(adapter: type[ArchAdapter], shape: ModelShape, original: dict[str, list[int]]) -> bool:
    """True when a stock config can describe ``shape`` (``original``: the unpruned structure) exactly."""
    original_units = original["num_head_units"]
    units = [la.num_head_units for la in shape.layers]
    if len({la.ffn_size for la in shape.layers}) > 1 or len(set(units)) > 1:
        return False
    return units == list(original_units) or adapter.explicit_head_dim


def auto_map(stock_type: str, adapter: type[ArchAdapter]) -> dict[str, str]:
    """``auto_map`` of a self-describing checkpoint: every Auto class transformers maps this family to."""
    import transformers
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    out = {"AutoConfig": f"configuration_pruned.Pruned{CONFIG_MAPPING[stock_type].__name__}"}
    for auto, (mapping, decoders) in AUTO_MAPPINGS.items():
        name = getattr(modeling_auto, mapping).get(stock_type)
        if name and hasattr(transformers, name) and decoders in (None, adapter.is_decoder):
            out[auto] = f"modeling_pruned.Pruned{name}"
    return out


def standard_values(values: dict[str, Any], shape: ModelShape, adapter: type[ArchAdapter]) -> dict[str, Any]:
    """Config values whose stock size fields are the (uniform) pruned sizes."""
    fields = adapter.size_fields
    layer = shape.layers[0]
    out = {k: v for k, v in values.items() if k not in ("auto_map", LAYOUT_KEY)}
    out[fields.ffn] = layer.ffn_size
    if fields.kv_heads is not None:
        out[fields.kv_heads] = layer.num_head_units
        out[fields.heads] = layer.num_head_units * layer.query_heads_per_unit
        out["head_dim"] = layer.head_dim
    return out


def self_describing_values(values: dict[str, Any], shape: ModelShape, adapter: type[ArchAdapter]) -> dict[str, Any]:
    """Config values of the ``pruned_<family>`` model type (per-layer lists, the layout, auto_map)."""
    stock_type, fields = values["model_type"], adapter.size_fields
    out = dict(values)
    out["model_type"] = PREFIX + stock_type
    out[fields.heads] = [la.num_head_units * la.query_heads_per_unit for la in shape.layers]
    if fields.kv_heads is not None:
        out[fields.kv_heads] = [la.num_head_units for la in shape.layers]
    out[fields.ffn] = [la.ffn_size for la in shape.layers]
    out["head_dim"] = shape.layers[0].head_dim
    out[LAYOUT_KEY] = adapter.layout.as_dict(fields)
    out["architectures"] = [f"Pruned{name}" for name in values.get("architectures") or []]
    out["auto_map"] = auto_map(stock_type, adapter)
    return out


def write_config(directory: Path, shape: ModelShape, original: dict[str, list[int]]) -> bool:
    """Rewrite ``directory/config.json`` for ``shape``; True when the checkpoint needs remote code."""
    config_file = directory / "config.json"
    values = json.loads(config_file.read_text())
    for name in SHIPPED_FILES:  # a folder saved into before may hold stale copies
        (directory / name).unlink(missing_ok=True)
    adapter = portable_adapter(values["model_type"])
    if adapter is None:
        return False  # not a family we prune: left as saved
    remote = not is_standard(adapter, shape, original)
    values = self_describing_values(values, shape, adapter) if remote else standard_values(values, shape, adapter)
    config_file.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    if remote:
        for name in SHIPPED_FILES:
            shutil.copyfile(HERE / name, directory / name)
    return remote


def stock_values(values: dict[str, Any]) -> dict[str, Any]:
    """The stock config values of a ``pruned_<family>`` config (widest layer sizes), for rebuilding.

    The size fields are the config's own (``pruned_layout``), or, for checkpoints written
    before configs carried them, the family adapter's.
    """
    model_type = values.get("model_type", "")
    if not model_type.startswith(PREFIX):
        return values
    stock_type = model_type[len(PREFIX) :]
    fields = size_fields_of(values)
    if fields is None:
        fields = vars(adapter_class(stock_type).size_fields)
    out, _ = scalar_sizes(values, fields)
    out["model_type"] = stock_type
    out.pop("auto_map", None)
    out.pop(LAYOUT_KEY, None)
    out["architectures"] = [a[len("Pruned") :] if a.startswith("Pruned") else a for a in out.get("architectures") or []]
    return out
