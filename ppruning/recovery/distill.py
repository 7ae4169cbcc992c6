"""Knowledge distillation: the one teacher reference, the one teacher loader and the one loss every method shares.

docs/algorithms.md, distillation while fine-tuning.

SMP learns its masks with an optional teacher, and fine-tuning a pruned model can learn
from the dense model fine-tuned on the same task; both use :class:`DistillConfig` and
:func:`distillation_loss`, so "with a teacher" means the same thing everywhere. The paper
loss of SMP (Jiang et al., 2023, after Hinton et al.) is the default: ``0.5 * CE +
0.5 * T^2 * KL(teacher_T || student_T)`` at temperature ``T = 2``. The ``T^2`` keeps the
soft term's gradient on the scale of the hard one as ``T`` grows.

The library names a teacher by model (hub id + revision, or a folder); the service also
accepts a finished job and hands the library the folder it downloaded. :func:`load_teacher`
loads it with the task's head, after checking that its saved head has as many outputs as
the student's (a teacher fine-tuned on another task would otherwise fail deep in the loss,
or get a fresh random head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ppruning.errors import InvalidConfigError, ModelLoadError
from ppruning.model.loading import load_task_model
from ppruning.model.refs import ModelRef
from ppruning.tasks.registry import TaskInfo

#: Task kinds whose models return ``logits`` (question answering returns start/end logits).
TEACHER_TASK_KINDS = ("classification", "regression", "causal-lm")


class DistillConfig(BaseModel):
    """A teacher and how much the student listens to it."""

    model_config = ConfigDict(extra="forbid")

    teacher: ModelRef = Field(description="The teacher: a model fine-tuned on the same task (hub id or folder).")
    temperature: float = Field(default=2.0, gt=0.0, le=100.0, description="Softmax temperature T of both models.")
    alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Weight of the soft (teacher) term; the hard label term gets 1-alpha."
    )
    hidden_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="Weight of a layer-to-layer MSE between hidden states (0: logits only).",
    )


def saved_output_count(ref: ModelRef) -> int:
    """How many outputs the head saved with ``ref`` has (its ``id2label``; transformers' default 2 without one)."""
    from transformers import PretrainedConfig

    try:
        values, _ = PretrainedConfig.get_config_dict(ref.id, revision=ref.revision)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the teacher's config {ref.id!r}: {exc}", field="distill.teacher") from exc
    labels = values.get("id2label")
    return len(labels) if labels else int(values.get("num_labels", 2))


def load_teacher(
    config: DistillConfig, info: TaskInfo, *, outputs: int | None, label_names: list[str] | None = None
) -> nn.Module:
    """The teacher with the task's head, frozen, in eval mode (where it was loaded: the caller moves it).

    ``outputs``: the student's number of outputs (classes; 1 for regression), checked against
    the teacher's saved head first; None skips the check (a causal LM's outputs are its vocabulary).
    """
    if info.kind not in TEACHER_TASK_KINDS:
        raise InvalidConfigError(
            f"distillation supports {', '.join(TEACHER_TASK_KINDS)} tasks, not {info.kind!r}", field="distill"
        )
    if info.kind != "causal-lm" and outputs is not None:
        saved = saved_output_count(config.teacher)
        if saved != outputs:
            raise InvalidConfigError(
                f"the teacher {config.teacher.id!r} has {saved} outputs, the student {outputs}; "
                "give a teacher fine-tuned on the same task",
                field="distill.teacher",
            )
    teacher, _, _ = load_task_model(config.teacher, info, label_names=label_names)
    teacher.requires_grad_(False)
    return teacher.eval()


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, averaged over the batch.

    For a regression head (one output) there is no distribution to match: the mean squared
    difference of the outputs stands in, without the temperature.
    """
    teacher_logits = teacher_logits.detach().to(student_logits.dtype)
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits, teacher_logits)
    t = temperature
    student = F.log_softmax(student_logits.reshape(-1, student_logits.shape[-1]) / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.reshape(-1, teacher_logits.shape[-1]) / t, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * t * t


def hidden_loss(student_hidden: tuple[torch.Tensor, ...], teacher_hidden: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over layers of the MSE between hidden states (same depth and width: pruning keeps both)."""
    if len(student_hidden) != len(teacher_hidden):
        raise ValueError(f"hidden states of {len(student_hidden)} and {len(teacher_hidden)} layers cannot be matched")
    losses = [F.mse_loss(s, t.detach().to(s.dtype)) for s, t in zip(student_hidden, teacher_hidden, strict=True)]
    return torch.stack(losses).mean()


def distillation_loss(
    hard_loss: torch.Tensor,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    config: DistillConfig,
    student_hidden: tuple[torch.Tensor, ...] | None = None,
    teacher_hidden: tuple[torch.Tensor, ...] | None = None,
) -> torch.Tensor:
    """``(1 - alpha) * hard + alpha * soft (+ hidden_weight * hidden)``.

    ``hard_loss`` is the task loss the student computed on the labels (cross-entropy, or
    MSE for regression), so every head and task keeps its own definition of it.
    """
    loss = (1.0 - config.alpha) * hard_loss + config.alpha * soft_loss(
        student_logits, teacher_logits, config.temperature
    )
    if config.hidden_weight > 0.0:
        if student_hidden is None or teacher_hidden is None:
            raise ValueError("hidden_weight > 0 needs the hidden states of both models (output_hidden_states=True)")
        loss = loss + config.hidden_weight * hidden_loss(student_hidden, teacher_hidden)
    return loss
