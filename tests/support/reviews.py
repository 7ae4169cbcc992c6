"""The review texts every library, worker and CLI test prunes on: one task definition, shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CUSTOM = Path(__file__).parents[1] / "fixtures" / "custom"
REVIEWS_TRAIN = CUSTOM / "reviews_train.csv"
REVIEWS_VALIDATION = CUSTOM / "reviews_validation.csv"


def reviews_task(**extra: Any) -> dict[str, Any]:
    """The custom text-classification task on ``reviews_train.csv`` (column ``review``, label ``sentiment``)."""
    return {
        "name": "text-classification",
        "data_files": {"train": str(REVIEWS_TRAIN)},
        "text_column": "review",
        "label_column": "sentiment",
        **extra,
    }
