"""Dynamic padding: each batch is padded to its own longest row, never to the max length.

One collator for every task kind, for the Trainer and for scoring: token columns are
padded (inputs with the tokenizer's pad id, masks and segment ids with 0, sequence
labels with -100 so the loss ignores them); scalar columns (class labels, regression
targets, answer positions) are stacked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

_PAD_WITH_ZERO = ("attention_mask", "token_type_ids")
#: The model-input columns of a tokenised row.
INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


class PadCollator:
    def __init__(self, tokenizer: Any) -> None:
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key in rows[0]:
            values = [r[key] for r in rows]
            if isinstance(values[0], (list, tuple)):
                fill = self.pad_id if key == "input_ids" else (-100 if key == "labels" else 0)
                width = max(len(v) for v in values)
                batch[key] = torch.tensor([list(v) + [fill] * (width - len(v)) for v in values])
            elif isinstance(values[0], float):
                batch[key] = torch.tensor(values, dtype=torch.float32)
            else:
                batch[key] = torch.tensor(values)
        return batch


def pad_batch(rows: Sequence[Mapping[str, Any]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest member (dynamic padding)."""
    width = max(len(r["input_ids"]) for r in rows)
    batch: dict[str, torch.Tensor] = {}
    for col in INPUT_COLUMNS:
        if col not in rows[0] or rows[0][col] is None:
            continue
        fill = pad_id if col == "input_ids" else 0
        out = torch.full((len(rows), width), fill, dtype=torch.long)
        for i, r in enumerate(rows):
            values = torch.as_tensor(r[col], dtype=torch.long)
            out[i, : len(values)] = values
        batch[col] = out.to(device)
    if "attention_mask" not in batch:
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            mask[i, : len(r["input_ids"])] = 1
        batch["attention_mask"] = mask.to(device)
    return batch
