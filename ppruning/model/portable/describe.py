"""The ``config.json`` of a pruned checkpoint: stock where the structure allows, else self-describing.

Stock: every layer keeps the same FFN size and all its heads (or, for the families whose
config carries an explicit ``head_dim``, the same number of KV groups). Then the stock
size fields simply hold the pruned sizes and any stock loader builds the exact shapes.

Self-describing: the config gets ``model_type`` ``pruned_<family>``, per-layer lists in
the stock size fields, an ``auto_map`` to the two shipped files (copied next to it), and
``architectures`` naming the pruned classes. Without ``trust_remote_code`` the Auto
classes and ``pipeline()`` then refuse the unknown model type before any weight is
read; a stock class rejects the per-layer lists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ppruning.arch.base import ModelShape
from ppruning.model.portable.configuration_pruned import PREFIX, SIZE_FIELDS, scalar_sizes

HERE = Path(__file__).parent
SHIPPED_FILES = ("configuration_pruned.py", "modeling_pruned.py")
#: families whose attention reads ``config.head_dim`` (so heads may change without changing the head size)
EXPLICIT_HEAD_DIM = ("llama", "mistral", "qwen2")
#: stock class-name endings -> the Auto class that loads them
AUTO_CLASSES = {
    "Model": "AutoModel",
    "ForSequenceClassification": "AutoModelForSequenceClassification",
    "ForQuestionAnswering": "AutoModelForQuestionAnswering",
    "ForTokenClassification": "AutoModelForTokenClassification",
    "ForMaskedLM": "AutoModelForMaskedLM",
    "ForCausalLM": "AutoModelForCausalLM",
    "LMHeadModel": "AutoModelForCausalLM",
}


def is_standard(stock_type: str, shape: ModelShape, original: dict[str, list[int]]) -> bool:
    """True when a stock config can describe ``shape`` (``original``: the unpruned structure) exactly."""
    if stock_type not in SIZE_FIELDS:
        return True  # not a family we prune: left as saved
    original_units = original["num_head_units"]
    units = [la.num_head_units for la in shape.layers]
    if len({la.ffn_size for la in shape.layers}) > 1 or len(set(units)) > 1:
        return False
    return units == list(original_units) or stock_type in EXPLICIT_HEAD_DIM


def _auto_map(stock_type: str) -> dict[str, str]:
    from ppruning.model.portable import modeling_pruned

    out = {"AutoConfig": f"configuration_pruned.Pruned{_config_stem(stock_type)}"}
    for name, cls in vars(modeling_pruned).items():
        if not name.startswith("Pruned") or getattr(cls, "config_class", None) is None:
            continue
        if getattr(cls.config_class, "stock_type", None) != stock_type or not isinstance(cls, type):
            continue
        ending = next((e for e in sorted(AUTO_CLASSES, key=len, reverse=True) if name.endswith(e)), None)
        if ending and AUTO_CLASSES[ending] not in out:
            out[AUTO_CLASSES[ending]] = f"modeling_pruned.{name}"
    return out


def _config_stem(stock_type: str) -> str:
    from ppruning.model.portable.configuration_pruned import CONFIGS

    return CONFIGS[stock_type].__name__[len("Pruned") :]


def standard_values(values: dict[str, Any], shape: ModelShape) -> dict[str, Any]:
    """Config values whose stock size fields are the (uniform) pruned sizes."""
    stock_type = values["model_type"]
    _, heads, kv_heads, ffn = SIZE_FIELDS[stock_type]
    layer = shape.layers[0]
    out = {k: v for k, v in values.items() if k != "auto_map"}
    out[ffn] = layer.ffn_size
    if kv_heads is not None:
        out[kv_heads] = layer.num_head_units
        out[heads] = layer.num_head_units * layer.query_heads_per_unit
        out["head_dim"] = layer.head_dim
    return out


def self_describing_values(values: dict[str, Any], shape: ModelShape) -> dict[str, Any]:
    """Config values of the ``pruned_<family>`` model type (per-layer lists, auto_map)."""
    stock_type = values["model_type"]
    _, heads, kv_heads, ffn = SIZE_FIELDS[stock_type]
    out = dict(values)
    out["model_type"] = PREFIX + stock_type
    out[heads] = [la.num_head_units * la.query_heads_per_unit for la in shape.layers]
    if kv_heads is not None:
        out[kv_heads] = [la.num_head_units for la in shape.layers]
    out[ffn] = [la.ffn_size for la in shape.layers]
    out["head_dim"] = shape.layers[0].head_dim
    out["architectures"] = [f"Pruned{name}" for name in values.get("architectures") or []]
    out["auto_map"] = _auto_map(stock_type)
    return out


def write_config(directory: Path, shape: ModelShape, original: dict[str, list[int]]) -> bool:
    """Rewrite ``directory/config.json`` for ``shape``; True when the checkpoint needs remote code."""
    config_file = directory / "config.json"
    values = json.loads(config_file.read_text())
    stock_type = values["model_type"]
    for name in SHIPPED_FILES:  # a folder saved into before may hold stale copies
        (directory / name).unlink(missing_ok=True)
    if stock_type not in SIZE_FIELDS:
        return False
    remote = not is_standard(stock_type, shape, original)
    values = self_describing_values(values, shape) if remote else standard_values(values, shape)
    config_file.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    if remote:
        for name in SHIPPED_FILES:
            shutil.copyfile(HERE / name, directory / name)
    return remote


def stock_values(values: dict[str, Any]) -> dict[str, Any]:
    """The stock config values of a ``pruned_<family>`` config (widest layer sizes), for rebuilding."""
    model_type = values.get("model_type", "")
    if not model_type.startswith(PREFIX):
        return values
    stock_type = model_type[len(PREFIX) :]
    out, _ = scalar_sizes(stock_type, values)
    out["model_type"] = stock_type
    out.pop("auto_map", None)
    out["architectures"] = [a[len("Pruned") :] if a.startswith("Pruned") else a for a in out.get("architectures") or []]
    return out
