"""PruneNet's ``policy.pt``: the trained policy written by a run, and read back to slice at another ratio.

The paper's point is "you only prune once": the policy reads a layer's FFN-in weight and
scores its rows, whatever the number of rows kept, so one trained policy slices the same
model at any ratio without training again (the authors' code reloads its saved policy).
The file is a ``torch.save`` of plain values and tensors (the policy's ``state_dict``,
its sizes, the episode and reward it earned, the width and model it was trained for),
read back with ``weights_only=True``: a file of someone else's making runs no code.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ppruning.errors import InvalidConfigError

POLICY_FILE = "policy.pt"
FORMAT = "ppruning-prunenet-policy/1"
_FIELD = "params.policy"


def policy_bytes(
    state_dict: dict[str, torch.Tensor],
    *,
    hidden_size: int,
    ffn_size: int,
    episode: int,
    total_reward: float,
    neurons_kept_per_layer: int,
    model: dict[str, Any] | None,
) -> bytes:
    """What a run writes as ``policy.pt``."""
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "state_dict": {n: t.detach().cpu() for n, t in state_dict.items()},
            "hidden_size": hidden_size,
            "ffn_size": ffn_size,
            "episode": episode,
            "total_reward": total_reward,
            "trained_for": {"neurons_kept_per_layer": neurons_kept_per_layer, "model": model},
        },
        buffer,
    )
    return buffer.getvalue()


def policy_path(raw: str) -> Path:
    """The file ``raw`` names: itself, or ``policy.pt`` in the folder it names; InvalidConfigError if none."""
    path = Path(raw).expanduser()
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.is_file():
        raise InvalidConfigError(
            f"{_FIELD}: no policy file at {raw!r} (give a policy.pt an earlier prunenet run wrote, or its folder)",
            field=_FIELD,
        )
    return path


def load_policy(raw: str, hidden_size: int, ffn_size: int) -> dict[str, Any]:
    """The saved policy, checked to fit a model of these sizes; InvalidConfigError naming params.policy."""
    path = policy_path(raw)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or one holding objects: not ours to run
        raise InvalidConfigError(f"{_FIELD}: {raw!r} is not a PruneNet policy file ({exc})", field=_FIELD) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise InvalidConfigError(f"{_FIELD}: {raw!r} is not a PruneNet policy file", field=_FIELD)
    sizes = (saved.get("hidden_size"), saved.get("ffn_size"))
    if sizes != (hidden_size, ffn_size):
        raise InvalidConfigError(
            f"{_FIELD}: the policy was trained for hidden size {sizes[0]} and FFN width {sizes[1]}; this model has "
            f"{hidden_size} and {ffn_size}",
            field=_FIELD,
        )
    return saved
