"""Knowledge distillation: the one teacher reference and the one loss every method shares.

SMP learns its masks with an optional teacher, and fine-tuning a pruned model can learn
from the dense model fine-tuned on the same task; both use :class:`DistillConfig` and
:func:`distillation_loss`, so "with a teacher" means the same thing everywhere. The paper
loss of SMP (Jiang et al., 2023, after Hinton et al.) is the default: ``0.5 * CE +
0.5 * T^2 * KL(teacher_T || student_T)`` at temperature ``T = 2``. The ``T^2`` keeps the
soft term's gradient on the scale of the hard one as ``T`` grows.

The library names a teacher by model (hub id + revision, or a folder); the service also
accepts a finished job and hands the library the folder it downloaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from ppruning.model.refs import ModelRef


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
