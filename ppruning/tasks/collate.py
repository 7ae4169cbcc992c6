"""Dynamic padding: each batch is padded to its own longest row, never to the max length.

One collator for every task kind, for the Trainer and for scoring: token columns are
padded (inputs with the tokenizer's pad id, masks and segment ids with 0, sequence
labels with -100 so the loss ignores them); scalar columns (class labels, regression
targets, answer positions) are stacked.
"""

from __future__ import annotations

from typing import Any

import torch

_PAD_WITH_ZERO = ("attention_mask", "token_type_ids")


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
