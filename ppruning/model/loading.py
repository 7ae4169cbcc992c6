"""Loading a model for a task, and choosing the device: one place for pruning, fine-tuning and evaluation.

:func:`load_task_model` gives the model with the head the task uses (``TaskInfo.head``):
a hub id or folder, a pruned checkpoint, or a full model cut by mask files first
(cutting before training is the point of P-pruning: the smaller model trains faster).
A pruned folder is recognised by its recorded structure (``pruning.json`` or the
config's ``ppruning_structure``) and rebuilt with :func:`ppruning.model.checkpoint.load_pruned`;
the task head gets the task's label count and names (a freshly initialised head
when the checkpoint's differs, as Hugging Face does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ppruning.errors import InvalidConfigError, ModelLoadError
from ppruning.model.load_report import held_load_report, pass_on_backbone_problems
from ppruning.model.owned_weights import from_pretrained_owned
from ppruning.model.refs import ModelRef
from ppruning.tasks.registry import TaskInfo


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; an unavailable CUDA device is an input error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidConfigError(
            f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'", field="device"
        )
    return torch.device(device)


def is_pruned_checkpoint(path: Path) -> bool:
    from ppruning.arch.base import STRUCTURE_KEY
    from ppruning.model.checkpoint import PRUNING_FILE

    if (path / PRUNING_FILE).is_file():
        return True
    config = path / "config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get(STRUCTURE_KEY))


def _named_tokenizer_class(folder: Path) -> Any:
    """The class ``tokenizer_config.json`` names, when transformers has it; else None.

    A pruned checkpoint's ``config.json`` has a model type of its own, so ``AutoTokenizer``
    would stop to ask for remote code only to read it; the tokenizer needs none of it.
    """
    import transformers

    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    name = json.loads(config.read_text()).get("tokenizer_class")
    return getattr(transformers, name, None) if isinstance(name, str) else None


def load_tokenizer(model: ModelRef | Path) -> Any:
    from transformers import AutoTokenizer

    ident, revision = (str(model), None) if isinstance(model, Path) else (model.id, model.revision)
    folder = Path(ident)
    named = _named_tokenizer_class(folder) if folder.is_dir() and is_pruned_checkpoint(folder) else None
    try:
        tokenizer = (named or AutoTokenizer).from_pretrained(ident, revision=revision)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {ident!r}: {exc}", field="model.id") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style: pad with EOS, masked out anyway
    return tokenizer


def task_config_overrides(info: TaskInfo, label_names: list[str] | None) -> dict[str, Any]:
    """num_labels / id2label / problem_type for the task's head (nothing for QA and LM)."""
    if info.kind == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    if info.kind == "classification":
        names = label_names or list(info.label_names)
        if not names:  # labels not read yet (pruning reads inputs only): the task's count, if it has one
            return {"num_labels": info.num_labels} if info.num_labels else {}
        return {
            "num_labels": len(names),
            "id2label": dict(enumerate(names)),
            "label2id": {n: i for i, n in enumerate(names)},
            "problem_type": "single_label_classification",
        }
    return {}


def load_task_model(
    model: ModelRef, info: TaskInfo, *, label_names: list[str] | None = None, masks_dir: str | None = None
) -> tuple[Any, Any, bool]:
    """(model with the task's head, tokenizer, whether it is pruned); ``masks_dir`` cuts a full model first."""
    overrides = task_config_overrides(info, label_names)
    path = Path(model.id)
    if path.is_dir() and is_pruned_checkpoint(path):
        if masks_dir:
            raise InvalidConfigError(
                f"{model.id} is already pruned; give --masks only with a full model", field="masks"
            )
        net = _load_pruned_with_head(path, info, overrides)
        pruned = True
    else:
        net = _from_pretrained(model, info, overrides)
        pruned = False
        if masks_dir:
            from ppruning.model.surgery import prune_model
            from ppruning.units.masks import load_masks

            prune_model(net, load_masks(Path(masks_dir)))
            pruned = True
    tokenizer = load_tokenizer(path if path.is_dir() else model)
    if getattr(net.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        net.config.pad_token_id = tokenizer.pad_token_id
    return net, tokenizer, pruned


def _auto_class(info: TaskInfo) -> Any:
    import transformers

    from ppruning.model.checkpoint import HEADS

    return getattr(transformers, HEADS[info.head])


def _from_pretrained(model: ModelRef, info: TaskInfo, overrides: dict[str, Any]) -> Any:
    from safetensors import SafetensorError  # a truncated or corrupt weights file

    cls = _auto_class(info)
    try:
        with held_load_report() as reports:  # the new task head is expected; the backbone's rows are passed on
            net = from_pretrained_owned(cls, model.id, model.revision, **overrides)
        pass_on_backbone_problems(reports, model.id, net.base_model_prefix)
        return net
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelLoadError(f"cannot load {model.id!r} with a {info.head} head: {exc}", field="model.id") from exc


def _load_pruned_with_head(path: Path, info: TaskInfo, overrides: dict[str, Any]) -> Any:
    """load_pruned with the task's head; when the head's label count differs, a new head on the same backbone."""
    from ppruning.arch import get_adapter
    from ppruning.model.checkpoint import load_pruned
    from ppruning.model.surgery import prune_model
    from ppruning.units.masks import Masks

    net = load_pruned(path, head=info.head)
    if (
        not overrides
        or getattr(net.config, "num_labels", None) == overrides.get("num_labels")
        and (info.kind != "regression" or net.config.problem_type == "regression")
    ):
        for key, value in overrides.items():
            setattr(net.config, key, value)
        return net.train()
    # A different label count: same backbone, fresh head of the right size (as from_pretrained would do).
    config = net.config.__class__.from_dict({**net.config.to_dict(), **overrides})
    fresh = _auto_class(info).from_config(config)
    shape = get_adapter(net).shape()
    full = get_adapter(fresh).shape().layers[0]
    heads = torch.tensor([la.num_head_units for la in shape.layers])
    ffn = torch.tensor([la.ffn_size for la in shape.layers])
    masks = Masks(
        (torch.arange(full.num_head_units)[None, :] < heads[:, None]).float(),
        (torch.arange(full.ffn_size)[None, :] < ffn[:, None]).float(),
    )
    prune_model(fresh, masks)
    fresh.base_model.load_state_dict(net.base_model.state_dict())
    return fresh.to(next(net.parameters()).dtype).train()


def load_saved_task_model(path: Path, info: TaskInfo, device: torch.device) -> tuple[Any, Any]:
    """A saved fine-tuned model (pruned or not) with the task's head, in eval mode on ``device``."""
    from ppruning.model.checkpoint import load_pruned

    if not path.is_dir():
        raise ModelLoadError(f"{path} is not a folder with a saved model", field="model")
    net = load_pruned(path, head=info.head, device=str(device))
    tokenizer = load_tokenizer(path)
    if getattr(net.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        net.config.pad_token_id = tokenizer.pad_token_id
    return net.eval(), tokenizer
