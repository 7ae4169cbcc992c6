"""A method's training state as data: one safetensors file, its tensors plus a JSON tree of everything else.

A state (tensors, the optimiser's ``state_dict``, the step, the loss curve) is read back by
whoever resumes the run, and in the service the bytes come from a bucket that others may
be able to write. A pickle (``torch.load(weights_only=False)``) would run whatever such a
writer put there; a safetensors file holds tensors and a string header, nothing that runs.

The encoding (:func:`encode_resume_state`): every tensor is stored under a key ``t<n>``;
the rest of the state goes into the header's metadata as one JSON tree in which a tensor is
``{"tensor": "t<n>"}`` and the Python values JSON cannot say exactly are tagged: a dict
is ``{"dict": [[key, value], ...]}`` (an optimiser's state is keyed by ints), a tuple
``{"tuple": [...]}`` (Adam's ``betas``), a float that is not finite ``{"float": "nan"}``.
Lists, strings, ints, finite floats, booleans and None are themselves. Anything else (an
object of some class) cannot be saved: :class:`ResumeStateError` says which.

The service backs the same calls with the artifact store under the job's resume prefix,
with the same bytes, so a state is one format wherever it lives.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "resume_state.safetensors"
#: The header's metadata keys: the format's name and version, and the JSON tree.
FORMAT_KEY, TREE_KEY = "ppruning_resume", "tree"
FORMAT_VERSION = "1"
#: A header longer than this is not one this module wrote (safetensors caps it at 100 MB too).
MAX_HEADER_BYTES = 100_000_000


class ResumeStateError(ValueError):
    """A state holds a value that cannot be saved, or bytes that are not a saved state."""


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu").contiguous().clone()  # no shared storage: safetensors refuses it
        return {"tensor": key}
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}.{k}")] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}.{i}") for i, v in enumerate(value)]
    raise ResumeStateError(f"the resume state holds a {type(value).__name__} at {where!r}: only tensors and "
                           "plain values (numbers, strings, lists, tuples, dicts, None) can be saved")  # fmt: skip


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise ResumeStateError("not a resume state: an untagged object in its tree")
    (tag, body), = node.items()
    if tag == "tensor":
        if body not in tensors:
            raise ResumeStateError(f"not a resume state: tensor {body!r} is missing")
        return tensors[body]
    if tag == "float":
        return float(body)
    if tag == "tuple":
        return tuple(_decode(v, tensors) for v in body)
    if tag == "dict":
        return {_decode(k, tensors): _decode(v, tensors) for k, v in body}
    raise ResumeStateError(f"not a resume state: unknown tag {tag!r}")


def encode_resume_state(state: dict[str, Any]) -> bytes:
    """The bytes of one safetensors file holding ``state`` (see the module docstring)."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "state")
    return save(tensors, metadata={FORMAT_KEY: FORMAT_VERSION, TREE_KEY: json.dumps(tree, separators=(",", ":"))})


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__``, read as data (8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ResumeStateError("not a resume state: too short")
    size = int.from_bytes(data[:8], "little")
    if size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ResumeStateError("not a resume state: its header does not fit")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError):
        raise ResumeStateError("not a resume state: its header is not JSON") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get(FORMAT_KEY) != FORMAT_VERSION or TREE_KEY not in meta:
        raise ResumeStateError("not a resume state of this version")
    return meta


def decode_resume_state(data: bytes) -> dict[str, Any]:
    """The state back, on the CPU; :class:`ResumeStateError` for bytes this module did not write.

    Nothing in the bytes is executed: safetensors parses tensors, ``json`` parses the rest.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    meta = _metadata(data)
    try:
        tensors = load(data)
    except SafetensorError as exc:
        raise ResumeStateError(f"not a resume state: {exc}") from None
    try:
        tree = json.loads(meta[TREE_KEY])
    except ValueError:
        raise ResumeStateError("not a resume state: its tree is not JSON") from None
    state = _decode(tree, tensors)
    if not isinstance(state, dict):
        raise ResumeStateError("not a resume state: its tree is not a dict")
    return state


class FolderResume:
    """``load``/``save`` of one state file, replaced atomically (write to a temporary name, then rename)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / STATE_FILE

    def load(self) -> dict[str, Any] | None:
        return decode_resume_state(self.path.read_bytes()) if self.path.is_file() else None

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(encode_resume_state(state))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
