"""A resume store in a folder: what the CLI and the tests give a resumable method.

The service backs the same two calls with the artifact store under the job's resume prefix.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "resume_state.pt"


def state_to_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


class FolderResume:
    """``load``/``save`` of one state file, replaced atomically (write to a temporary name, then rename)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / STATE_FILE

    def load(self) -> dict[str, Any] | None:
        return state_from_bytes(self.path.read_bytes()) if self.path.is_file() else None

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(state_to_bytes(state))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
