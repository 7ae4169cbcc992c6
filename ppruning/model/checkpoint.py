"""Saving a pruned model so that it reloads in one call, and reloading it.

A pruned checkpoint is an ordinary ``save_pretrained`` folder (config, safetensors,
tokenizer) plus ``pruning.json``; the per-layer structure is also in the config under
``ppruning_structure``. Its ``config.json`` is written so that plain transformers loads
it too (:mod:`ppruning.model.portable.describe`): a stock config when every layer has the
same shape, else a ``pruned_<family>`` model type with its modelling code beside it
(``trust_remote_code=True``).

:func:`load_pruned` returns the stock transformers classes the library works on: it
builds the model from the stock form of the config, cuts every layer to the recorded
counts (random weights, nothing worth keeping is copied) and then loads the saved state
dict into the reduced shapes. Checkpoints written before the config was made
self-describing (stock model type, dense sizes) load the same way.

The backbone is matched by its own parameter names, whatever prefix the saving class
used (``bert.``, ``transformer.``, ``model.`` or none), so a checkpoint saved with one
head loads with another (the new head is freshly initialised, as HF does).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppruning.arch import get_adapter
from ppruning.arch.base import STRUCTURE_KEY
from ppruning.errors import InvalidConfigError, ModelLoadError
from ppruning.model.portable.describe import stock_values, write_config
from ppruning.model.surgery import count_parameters, prune_model
from ppruning.units.masks import Masks

log = logging.getLogger(__name__)

PRUNING_FILE = "pruning.json"
FORMAT_VERSION = 1

#: ``head`` names accepted by :func:`load_pruned` -> transformers Auto class name.
HEADS = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "causal-lm": "AutoModelForCausalLM",
}


def head_name(model: nn.Module) -> str:
    """The ``head`` name of a model instance (``base`` when it is the backbone itself)."""
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "sequence-classification"
    if name.endswith("ForQuestionAnswering"):
        return "question-answering"
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return "causal-lm"
    if getattr(model, "base_model", model) is model:
        return "base"
    return name  # another head: reloaded by class name


def save_pruned(model: nn.Module, tokenizer: Any, directory: Path, extra: dict[str, Any] | None = None) -> Path:
    """``save_pretrained`` + tokenizer + ``pruning.json``; returns the folder."""
    import transformers

    from ppruning.version import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    adapter = get_adapter(model)
    record = adapter.record_structure()
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    shape = adapter.shape()
    original = record.get("original", shape.structure())
    remote_code = write_config(directory, shape, original)
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model_type": model.config.model_type,
        "head": head_name(model),
        "head_class": type(model).__name__,
        "structure": {k: v for k, v in record.items() if k != "original"},
        "original": original,
        "loads_with": "trust_remote_code" if remote_code else "stock",
        "hidden_size": shape.hidden_size,
        "head_unit_width": [la.head_unit_width for la in shape.layers],
        "parameters": count_parameters(model),
        "versions": {
            "ppruning": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    info.update(extra or {})
    (directory / PRUNING_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return directory


def _model_class(head: str | None, info: dict[str, Any], config: Any) -> type:
    import transformers

    if head is not None:
        if head not in HEADS:
            raise InvalidConfigError(f"unknown head {head!r}; choose one of: {', '.join(HEADS)}", field="head")
        return getattr(transformers, HEADS[head])
    for name in (info.get("head_class"), *(getattr(config, "architectures", None) or [])):
        if name and hasattr(transformers, name):
            return getattr(transformers, name)
    return transformers.AutoModel


def _read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    from ppruning.model.owned_weights import safetensors_files

    files = safetensors_files(str(directory))
    if files is None:
        raise ModelLoadError(f"no model.safetensors (or index) in {directory}", field="model")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(_read_weights_file(path))
    return state


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(f"cannot read the weights in {path}: {exc}", field="model") from exc


def _remap(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename saved keys to ``model``'s: the backbone under whatever prefix it was saved with."""
    backbone = getattr(model, "base_model", model)
    target_prefix = "" if backbone is model else f"{model.base_model_prefix}."
    backbone_keys = set(backbone.state_dict())
    candidates = {""} | {k.split(".", 1)[0] + "." for k in state if "." in k}
    saved_prefix = max(sorted(candidates), key=lambda p: sum(1 for b in backbone_keys if p + b in state))
    model_keys = set(model.state_dict())
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        inner = key[len(saved_prefix) :] if key.startswith(saved_prefix) else None
        if inner is not None and inner in backbone_keys:
            out[target_prefix + inner] = tensor
        elif key in model_keys:
            out[key] = tensor  # the task head's own weights
    return out


def resolve_checkpoint(path: str | Path, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a hub id, fetched (or found in the hub cache when offline)."""
    directory = Path(path)
    if directory.is_dir():
        return directory
    ident = str(path)
    if directory.is_absolute() or ident.startswith(".") or ident.count("/") > 1:
        raise ModelLoadError(f"{directory} is not a folder with a saved model", field="model")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ident, revision=revision))
    except Exception as exc:  # offline cache miss, unknown repo or revision, no network
        raise ModelLoadError(
            f"{ident!r} is not a folder with a saved model and could not be fetched from the hub"
            f"{f' at revision {revision!r}' if revision else ''}: {exc}",
            field="model",
        ) from exc


def _read_config(directory: Path) -> Any:
    """The stock transformers config of a checkpoint (a ``pruned_<family>`` one in its stock form)."""
    from transformers import AutoConfig, PretrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        values, _ = PretrainedConfig.get_config_dict(directory)
        if values.get("model_type") in CONFIG_MAPPING and "auto_map" not in values:
            return AutoConfig.from_pretrained(directory)
        values = stock_values(values)
        return CONFIG_MAPPING[values["model_type"]].from_dict(values)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read the config in {directory}: {exc}", field="model") from exc


def load_pruned(
    path: str | Path,
    head: str | None = None,
    *,
    revision: str | None = None,
    dtype: torch.dtype | None = None,
    device: str | None = None,
) -> nn.Module:
    """Rebuild the reduced shapes recorded with the checkpoint and load its weights (eval mode).

    ``path``: a folder, or a hub id (``org/name``, at ``revision``). ``head``: None (what
    was saved), ``"base"``, ``"sequence-classification"``, ``"question-answering"`` or
    ``"causal-lm"``. A plain (unpruned) HF checkpoint loads too.
    """
    directory = resolve_checkpoint(path, revision)
    info_file = directory / PRUNING_FILE
    info: dict[str, Any] = json.loads(info_file.read_text()) if info_file.is_file() else {}
    config = _read_config(directory)
    cls = _model_class(head, info, config)
    structure = info.get("structure") or getattr(config, STRUCTURE_KEY, None)
    if not structure:
        model = cls.from_pretrained(directory, **({"dtype": dtype} if dtype is not None else {}))
        return model.to(device).eval() if device else model.eval()

    state = _read_state_dict(directory)
    model = cls.from_config(config) if hasattr(cls, "from_config") else cls(config)
    _cut_to(model, structure)
    if dtype is None:
        dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    model.to(dtype)
    remapped = _remap(state, model)
    result = model.load_state_dict(remapped, strict=False)
    backbone = getattr(model, "base_model", model)
    prefix = "" if backbone is model else f"{model.base_model_prefix}."
    missing_backbone = [
        k for k in result.missing_keys if k.startswith(prefix) and k[len(prefix) :] in backbone.state_dict()
    ]
    if missing_backbone:
        raise ModelLoadError(
            f"{directory} lacks {len(missing_backbone)} backbone weights (e.g. {missing_backbone[0]})", field="model"
        )
    model.tie_weights()  # a tied LM head (GPT-2) is saved once, under the embedding's name
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in remapped if k in params}
    fresh = [k for k in result.missing_keys if k not in params or params[k].data_ptr() not in loaded]
    if fresh:
        log.warning("newly initialised (not in the checkpoint): %s", ", ".join(fresh))
    if device:
        model.to(device)
    return model.eval()


def _cut_to(model: nn.Module, structure: dict[str, list[int]]) -> None:
    """Cut a freshly built full-size model to the recorded per-layer counts (first units kept)."""
    adapter = get_adapter(model)
    full = adapter.shape()
    heads, ffn = structure["num_head_units"], structure["ffn_size"]
    if len(heads) != full.num_layers or len(ffn) != full.num_layers:
        raise ModelLoadError(
            f"pruning structure lists {len(heads)} layers but the config has {full.num_layers}", field="model"
        )
    width_h, width_n = full.layers[0].num_head_units, full.layers[0].ffn_size
    head_mask = (torch.arange(width_h)[None, :] < torch.tensor(heads)[:, None]).float()
    neuron_mask = (torch.arange(width_n)[None, :] < torch.tensor(ffn)[:, None]).float()
    prune_model(model, Masks(head_mask, neuron_mask), adapter)
