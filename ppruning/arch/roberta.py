"""RoBERTa: BERT's module layout under a different ``base_model_prefix``.

Its position ids come from the input ids (pads skipped, offset by ``padding_idx + 1``),
so padded batches need no position ids from the caller, and its position embeddings
reserve two positions before the first token.
"""

from __future__ import annotations

from typing import Any

import torch

from ppruning.arch.bert import BertAdapter
from ppruning.arch.registry import register_adapter


@register_adapter
class RobertaAdapter(BertAdapter):
    model_types = ("roberta",)
    position_offset = 2

    def position_ids(self, attention_mask: Any) -> Any:
        return None

    def mlm_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(hidden)
