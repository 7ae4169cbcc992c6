"""RoBERTa: BERT's module layout under a different ``base_model_prefix``."""

from __future__ import annotations

from ppruning.arch import register_adapter
from ppruning.arch.bert import BertAdapter


@register_adapter
class RobertaAdapter(BertAdapter):
    model_types = ("roberta",)
