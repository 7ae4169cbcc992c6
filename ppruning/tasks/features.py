"""Turning a task's rows into model inputs, the same way for pruning and for fine-tuning.

P-pruning collects activations on inputs "tokenised as for fine-tuning"
(docs/algorithms.md, P-pruning, step 1), so both paths share these encoders: sentence pairs as pairs,
QA as question + context (``only_second`` truncation), causal LM as fixed-size blocks
cut from the concatenated text (transformers' ``run_clm`` grouping). No padding here:
collators pad each batch (dynamic padding).
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from ppruning.arch.registry import adapter_class, supported_model_types
from ppruning.tasks.registry import TaskInfo

#: Lines grouped before cutting LM blocks (as transformers' run_clm: the remainder of each group is dropped).
LM_GROUP_ROWS = 1000
#: Tokenizers without a configured limit report this huge number; it means "unknown".
_NO_LIMIT = 1_000_000


def position_offset(model_type: str) -> int:
    """Positions the family's embeddings reserve before the first token (its adapter says; 0 for others)."""
    return adapter_class(model_type).position_offset if model_type in supported_model_types() else 0


def model_context(model_config: Any) -> int | None:
    """The longest input the model's position embeddings allow, when the config says."""
    if model_config is None:
        return None
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(model_config, attr, None)
        if isinstance(value, int) and value > 0:
            return value - position_offset(getattr(model_config, "model_type", ""))
    return None


def resolve_max_length(
    info: TaskInfo, tokenizer: Any, *, requested: int | None = None, model_config: Any = None
) -> int:
    """``requested`` or the task's max length, never longer than the model or tokenizer allows.

    Without a ``model_config`` the limit comes from the tokenizer, and when the tokenizer
    has none, from the model config saved next to it (``tokenizer.name_or_path``), so a
    tiny model with 128 positions is not fed 512-token LM blocks.
    """
    length = requested or info.max_length
    limits = [model_context(model_config)]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < _NO_LIMIT:
        limits.append(tok_limit)
    elif model_config is None:
        limits.append(model_context(_config_next_to(tokenizer)))
    for limit in limits:
        if limit:
            length = min(length, limit)
    return length


def _config_next_to(tokenizer: Any) -> Any:
    from pathlib import Path

    path = getattr(tokenizer, "name_or_path", "")
    if not path or not (Path(path) / "config.json").is_file():
        return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except Exception:  # an unreadable config only means no extra limit
        return None


def encode_text(tokenizer: Any, batch: dict[str, list], text_columns: tuple[str, ...], max_length: int) -> Any:
    """Single sentences or pairs, truncated to ``max_length`` (longest-first for pairs)."""
    texts = [batch[c] for c in text_columns]
    texts = [[t if t is not None else "" for t in column] for column in texts]
    return tokenizer(*texts, truncation=True, max_length=max_length)


def encode_qa_first_window(tokenizer: Any, batch: dict[str, list], max_length: int) -> Any:
    """Question + context, only the context truncated: the first window of each example."""
    questions = [q.lstrip() for q in batch["question"]]
    side = getattr(tokenizer, "padding_side", "right")
    pair = (questions, batch["context"]) if side == "right" else (batch["context"], questions)
    return tokenizer(*pair, truncation="only_second" if side == "right" else "only_first", max_length=max_length)


def lm_blocks(data: Any, tokenizer: Any, column: str, block_size: int, desc: str | None = None) -> Any:
    """Tokenise every row, concatenate, cut into ``block_size`` blocks (the remainder is dropped).

    When the whole split is shorter than one block, it becomes one shorter block, so a
    small validation file still yields a perplexity.
    """
    tokenized = data.map(
        lambda b: tokenizer([t or "" for t in b[column]]),
        batched=True,
        remove_columns=data.column_names,
        desc=desc,
    )
    keep = [c for c in ("input_ids", "attention_mask") if c in tokenized.column_names]
    tokenized = tokenized.select_columns(keep)

    def group(batch: dict[str, list]) -> dict[str, list]:
        joined = {k: list(chain.from_iterable(batch[k])) for k in keep}
        total = len(joined["input_ids"])
        usable = (total // block_size) * block_size
        return {k: [v[i : i + block_size] for i in range(0, usable, block_size)] for k, v in joined.items()}

    # LM_GROUP_ROWS rows per group, as run_clm: bounded memory on WikiText-103, a remainder dropped per group.
    blocks = tokenized.map(group, batched=True, batch_size=LM_GROUP_ROWS, desc=desc)
    if len(blocks) == 0 and len(tokenized) > 0:
        whole = {k: [list(chain.from_iterable(tokenized[k]))[:block_size]] for k in keep}
        blocks = type(tokenized).from_dict(whole)
    return blocks


def encode_pretraining_inputs(
    info: TaskInfo, tokenizer: Any, data: Any, text_columns: tuple[str, ...], max_length: int
) -> Any:
    """The unlabeled inputs P-pruning collects on (see :func:`ppruning.tasks.data.tokenized_inputs`)."""
    if info.kind == "causal-lm":
        return lm_blocks(data, tokenizer, text_columns[0], max_length)
    if info.kind == "question-answering":
        encoded = data.map(
            lambda b: encode_qa_first_window(tokenizer, b, max_length), batched=True, remove_columns=data.column_names
        )
    else:
        encoded = data.map(
            lambda b: encode_text(tokenizer, b, text_columns, max_length),
            batched=True,
            remove_columns=data.column_names,
        )
    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in encoded.column_names]
    return encoded.select_columns(keep)
