"""Loading a checkpoint's weights into memory each tensor owns, not views of the mapped file.

Why: ``from_pretrained`` maps each safetensors file and makes every weight a view of
that one mapping. The pages a read touches count as the process's resident memory for
as long as any weight of the file is alive, so cutting a model does not give back the
cut weights' pages: once the pruned model is written (which reads every weight), the
whole file is resident beside the new slices. For SmolLM2-135M that was a rise of 1.8x
the model's size. Read with ``pread`` (safetensors' ``backend="pread"``), each tensor
owns its memory, and a cut weight's memory is freed when its slice replaces it.

The weights are handed to ``from_pretrained`` as a state dict, which it adopts as they are
(no copy when the dtype is the checkpoint's), so everything else
(the config, key renaming, tied weights, the dtype, missing head weights) stays
transformers' own. A checkpoint without safetensors files (``pytorch_model.bin``), or a
model class the auto class cannot name from the config (remote code), loads the usual way.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def safetensors_files(model_id: str, revision: str | None = None) -> list[Path] | None:
    """The checkpoint's safetensors files (one, or the shards its index names); None when it has none.

    Resolved like ``from_pretrained`` does: a local folder, or the hub (or its cache).
    """
    from transformers.utils import cached_file

    def find(name: str) -> str | None:
        return cached_file(
            model_id,
            name,
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )

    single = find(SINGLE_FILE)
    if single is not None:
        return [Path(single)]
    index = find(INDEX_FILE)
    if index is None:
        return None
    shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
    found = [find(shard) for shard in shards]
    return None if any(path is None for path in found) else [Path(path) for path in found if path]


def concrete_class(auto_class: Any, config: Any) -> Any | None:
    """The model class an ``AutoModel*`` class picks for ``config``, or None (remote code, unknown type).

    ``from_pretrained`` with a state dict takes no model name, and an auto class needs one
    to choose; the mapping it would consult is the one ``AutoModel*.register`` fills.
    """
    mapping = getattr(auto_class, "_model_mapping", None)
    if mapping is None:
        return auto_class  # already a concrete class
    try:
        return mapping[type(config)]
    except KeyError:
        return None


def from_pretrained_owned(auto_class: Any, model_id: str, revision: str | None = None, **config_overrides: Any) -> Any:
    """``auto_class.from_pretrained(model_id, revision=..., **config_overrides)``, each weight in its own memory."""
    from safetensors import safe_open
    from transformers import AutoConfig

    files = safetensors_files(model_id, revision)
    config = AutoConfig.from_pretrained(model_id, revision=revision, **config_overrides) if files else None
    cls = concrete_class(auto_class, config) if config is not None else None
    if files is None or cls is None:
        return auto_class.from_pretrained(model_id, revision=revision, **config_overrides)
    with ExitStack() as stack:
        state: dict[str, Any] = {}
        for path in files:
            handle = stack.enter_context(safe_open(str(path), framework="pt", backend="pread"))
            state.update({key: handle.get_tensor(key) for key in handle.keys()})
        return cls.from_pretrained(None, config=config, state_dict=state)
