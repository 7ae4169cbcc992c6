"""Dynamic padding: each batch is padded to its own longest row, never to the max length.

One padder for every caller: the Trainer and scoring (through :class:`PadCollator`), and
the forward passes that read activations (collection, reconstruction). Token columns are
padded (inputs with the tokenizer's pad id, masks and segment ids with 0, sequence labels
with -100 so the loss ignores them); scalar columns (class labels, regression targets,
answer positions) are stacked. Rows without an attention mask get one (1 on each row's
own tokens), so a padded batch never attends to its padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

#: The model-input columns of a tokenised row.
INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def pad_token_id(tokenizer: Any) -> int:
    """The id padding is filled with: the pad token, else EOS, else UNK, else 0.

    EOS before UNK serves decoders, which ship without a pad token; the attention mask hides
    the padding whatever its id, but an id the model knows keeps embeddings well defined.
    """
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def pad_batch(
    rows: Sequence[Mapping[str, Any]],
    pad_id: int,
    *,
    columns: Sequence[str] | None = None,
    device: torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """``rows`` as one batch of tensors, padded to the longest row.

    ``columns``: the columns to keep (those the first row has and are not None); default
    every column of the first row. ``device``: where the tensors go (default: the CPU).
    """
    keys = [k for k in (columns or rows[0]) if k in rows[0] and rows[0][k] is not None]
    batch: dict[str, torch.Tensor] = {}
    for key in keys:
        values = [_as_list(r[key]) for r in rows]
        if isinstance(values[0], list):
            fill = pad_id if key == "input_ids" else (-100 if key == "labels" else 0)
            width = max(len(v) for v in values)
            batch[key] = torch.tensor([list(v) + [fill] * (width - len(v)) for v in values])
        elif isinstance(values[0], float):
            batch[key] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[key] = torch.tensor(values)
    if "input_ids" in batch and "attention_mask" not in batch:
        lengths = torch.tensor([len(r["input_ids"]) for r in rows])
        batch["attention_mask"] = (torch.arange(batch["input_ids"].shape[1])[None, :] < lengths[:, None]).long()
    return batch if device is None else {k: v.to(device) for k, v in batch.items()}


def _as_list(value: Any) -> Any:
    """A token column as a list (rows may hold lists, tuples, or 1-d arrays and tensors); scalars unchanged."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if getattr(value, "ndim", 0) == 1:
        return value.tolist()
    return value


class PadCollator:
    """:func:`pad_batch` with the tokenizer's pad id: the Trainer's and the scoring loops' collator."""

    def __init__(self, tokenizer: Any) -> None:
        self.pad_id = pad_token_id(tokenizer)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return pad_batch(rows, self.pad_id)
