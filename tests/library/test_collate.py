"""The one batch padder and the one pad id, for collection, reconstruction, training and scoring."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ppruning.tasks.collate import INPUT_COLUMNS, PadCollator, pad_batch, pad_token_id


def test_the_pad_id_is_the_pad_token_then_eos_then_unk_then_zero() -> None:
    """One order for every caller (the collator used to skip UNK, the prune run did not)."""
    assert pad_token_id(SimpleNamespace(pad_token_id=3, eos_token_id=7, unk_token_id=1)) == 3
    assert pad_token_id(SimpleNamespace(pad_token_id=None, eos_token_id=7, unk_token_id=1)) == 7
    assert pad_token_id(SimpleNamespace(pad_token_id=None, eos_token_id=None, unk_token_id=1)) == 1
    assert pad_token_id(SimpleNamespace(pad_token_id=None, eos_token_id=None, unk_token_id=None)) == 0
    tokenizer = SimpleNamespace(pad_token_id=None, eos_token_id=None, unk_token_id=4)
    assert PadCollator(tokenizer).pad_id == 4


def test_token_columns_are_padded_per_batch_and_labels_with_minus_100() -> None:
    rows = [
        {"input_ids": [5, 6, 7], "labels": [1, 2, 3], "score": 0.5},
        {"input_ids": [8], "labels": [4], "score": 1.0},
    ]
    batch = pad_batch(rows, pad_id=9)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 9]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, -100, -100]]
    assert batch["score"].dtype == torch.float32
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]  # rows without a mask get one


def test_model_input_columns_only_when_asked_and_arrays_as_rows() -> None:
    rows = [
        {"input_ids": torch.tensor([5, 6]), "attention_mask": [1, 1], "token_type_ids": None, "text": "x"},
        {"input_ids": torch.tensor([7]), "attention_mask": [1], "token_type_ids": None, "text": "y"},
    ]
    batch = pad_batch(rows, pad_id=0, columns=INPUT_COLUMNS)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].tolist() == [[5, 6], [7, 0]] and batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
