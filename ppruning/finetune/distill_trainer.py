"""Distillation while fine-tuning: a ``Trainer`` whose loss mixes the labels with a teacher's outputs.

The teacher is the dense model fine-tuned on the same task (``FinetuneConfig.distill``,
a :class:`ppruning.recovery.distill.DistillConfig`, loaded by
:func:`ppruning.recovery.distill.load_teacher`); the loss is
:func:`ppruning.recovery.distill.distillation_loss`, the one SMP uses too. The teacher runs
in eval mode without gradients on the same batches; with ``hidden_weight > 0`` both models
also return their hidden states, matched layer to layer (pruning keeps depth and width).

The student is the model the run loaded: a pruned checkpoint's own weights (refit ones
included), never the dense model's reloaded. On a causal LM (per-token logits) the soft term
counts only the positions the hard loss scores (:func:`causal_lm_positions`: the logits at
``t`` predict token ``t + 1``; -100 labels and padding are left out) and is computed a chunk
of positions at a time.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from ppruning.recovery.distill import DistillConfig, causal_lm_positions, distillation_loss


def kl_positions(logits: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor | None:
    """The positions the soft term counts: None for one row of logits per example, else the causal-LM shift."""
    if logits.dim() < 3:
        return None
    return causal_lm_positions(inputs.get("labels"), inputs.get("attention_mask"))


class DistillTrainer(Trainer):
    """``Trainer`` whose loss is :func:`distillation_loss` of the student against ``teacher``."""

    def __init__(self, *args: Any, teacher: Any, distill: DistillConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.distill = distill

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        hidden = self.distill.hidden_weight > 0.0
        student = model(**inputs, output_hidden_states=hidden)
        if self.teacher.device != student.logits.device:
            self.teacher.to(student.logits.device)
        features = {k: v for k, v in inputs.items() if k != "labels"}
        with torch.no_grad():
            teacher = self.teacher(**features, output_hidden_states=hidden)
        loss = distillation_loss(
            student.loss,
            student.logits,
            teacher.logits,
            self.distill,
            student.hidden_states if hidden else None,
            teacher.hidden_states if hidden else None,
            positions=kl_positions(student.logits, inputs),
        )
        return (loss, student) if return_outputs else loss
