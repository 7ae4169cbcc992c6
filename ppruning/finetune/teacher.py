"""Distillation while fine-tuning: the student's loss mixes the labels with a teacher's outputs.

The teacher is the dense model fine-tuned on the same task (``FinetuneConfig.distill``,
a :class:`ppruning.recovery.distill.DistillConfig`); the loss is :func:`ppruning.recovery.distill.distillation_loss`,
the one SMP uses too. The teacher runs in eval mode without gradients on the same
batches; with ``hidden_weight > 0`` both models also return their hidden states, matched
layer to layer (pruning keeps depth and width).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from ppruning.errors import InvalidConfigError
from ppruning.model.loading import load_task_model
from ppruning.recovery.distill import DistillConfig, distillation_loss
from ppruning.tasks.registry import TaskInfo

#: Task kinds whose models return ``logits`` (question answering returns start/end logits).
SUPPORTED_KINDS = ("classification", "regression", "causal-lm")


def load_teacher(config: DistillConfig, info: TaskInfo, student: Any, label_names: list[str] | None) -> Any:
    """The teacher with the task's head, frozen, in eval mode, on the student's device."""
    if info.kind not in SUPPORTED_KINDS:
        raise InvalidConfigError(
            f"distillation supports {', '.join(SUPPORTED_KINDS)} tasks, not {info.kind!r}", field="distill"
        )
    teacher, _, _ = load_task_model(config.teacher, info, label_names=label_names)
    outputs = getattr(teacher.config, "num_labels", None), getattr(student.config, "num_labels", None)
    if info.kind != "causal-lm" and outputs[0] != outputs[1]:
        raise InvalidConfigError(
            f"the teacher {config.teacher.id!r} has {outputs[0]} outputs, the student {outputs[1]}; "
            "give a teacher fine-tuned on the same task",
            field="distill.teacher",
        )
    teacher.requires_grad_(False)
    return teacher.eval()


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
        )
        return (loss, student) if return_outputs else loss
