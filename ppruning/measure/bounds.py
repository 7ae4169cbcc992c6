"""What a speed measurement may ask for: checked when the config is resolved, before anything runs.

``measure.seq_len`` and ``measure.batch_sizes`` are range-checked by the config model; a
range cannot know the model. Here, with the model's config in hand:

- ``seq_len`` must fit the model's position embeddings (``max_position_embeddings`` or
  ``n_positions``): a longer input would not run, or would be cut silently and timed at
  another length than the report says;
- each batch size must keep one forward pass's activations under
  :data:`MAX_ACTIVATION_BYTES`, estimated in float32 from the widest layer: the hidden
  states, the FFN's inner activations, the attention scores (``heads x seq_len`` per token)
  and, for a language model's head, the logits over the vocabulary. Both models (dense and
  pruned) are timed at every batch size, so a batch that needs more than a worker's memory
  would only end the job late, as an out-of-memory failure.

Only values the config gives are checked: the defaults are small by construction.
"""

from __future__ import annotations

from typing import Any

from ppruning.arch.base import ModelShape
from ppruning.errors import InvalidConfigError
from ppruning.measure.speed import MeasureConfig
from ppruning.tasks.features import model_context

#: The most one timed forward pass may need for its activations (float32 estimate).
MAX_ACTIVATION_BYTES = 16 * 2**30
_FLOAT32 = 4
_GIB = 2**30


def activation_bytes(shape: ModelShape, vocab_logits: int, batch: int, seq_len: int) -> int:
    """Estimated peak activation memory of one forward pass (see the module docstring)."""
    heads = max((la.num_head_units * la.query_heads_per_unit for la in shape.layers), default=0)
    ffn = max((la.ffn_size for la in shape.layers), default=0)
    per_token = 3 * shape.hidden_size + ffn + heads * seq_len + vocab_logits
    return batch * seq_len * per_token * _FLOAT32


def check_measure(measure: MeasureConfig | bool, hf_config: Any, shape: ModelShape, seq_len: int, head: str) -> None:
    """:class:`InvalidConfigError` naming ``measure.seq_len`` or ``measure.batch_sizes`` when one cannot run.

    ``seq_len``: the length the run uses when ``measure.seq_len`` is not given; ``head``: the
    task's head (a ``causal-lm`` head's logits span the vocabulary).
    """
    if not isinstance(measure, MeasureConfig):
        return
    context = model_context(hf_config)
    if measure.seq_len is not None and context and measure.seq_len > context:
        raise InvalidConfigError(
            f"measure.seq_len: {measure.seq_len} tokens is longer than the model's {context} positions; "
            f"give at most {context}",
            field="measure.seq_len",
        )
    if not measure.batch_sizes:
        return
    length = measure.seq_len or seq_len
    vocab = int(getattr(hf_config, "vocab_size", 0) or 0) if head == "causal-lm" else 0
    for batch in measure.batch_sizes:
        need = activation_bytes(shape, vocab, batch, length)
        if need > MAX_ACTIVATION_BYTES:
            raise InvalidConfigError(
                f"measure.batch_sizes: batch {batch} at {length} tokens needs about {need / _GIB:.1f} GiB of "
                f"activations per forward pass, more than the {MAX_ACTIVATION_BYTES // _GIB} GiB a measurement "
                "may use; time smaller batches or a shorter measure.seq_len",
                field="measure.batch_sizes",
            )
