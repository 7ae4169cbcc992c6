"""A resume store in a folder: what the CLI and the tests give a resumable method.

The service backs the same calls with the artifact store under the job's resume prefix,
with the same bytes (:func:`encode_resume_state`), so a state is one format wherever it lives.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "resume_state.pt"


def encode_resume_state(state: dict[str, Any]) -> bytes:
    """``torch.save`` bytes of a method's state (tensors, optimiser state, step, curve)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def decode_resume_state(data: bytes) -> dict[str, Any]:
    """The state back, on the CPU. Not ``weights_only``: the optimiser state holds plain Python objects,
    and a state is only ever read from where this run's own caller wrote it."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


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
