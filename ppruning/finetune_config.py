"""What a fine-tuning run is asked to do, validated once (see :mod:`ppruning.config` for the rest).

Kept apart from :mod:`ppruning.config` because it embeds the one distillation teacher type,
:class:`ppruning.distill.DistillConfig`, whose module itself reads ``ppruning.config``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ppruning.config import ModelRef, TaskRef, _Strict
from ppruning.distill import DistillConfig


class FinetuneConfig(_Strict):
    """Fine-tune a model (or a full model cut by ``masks``) on a task; optionally learn from a teacher."""

    model: ModelRef
    task: TaskRef
    masks: str | None = Field(default=None, description="Folder with head_mask.pt/neuron_mask.pt to cut first.")
    preset: Literal["paper"] | None = Field(default=None, description="The paper's hyperparameters for the task.")
    learning_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    epochs: float | None = Field(default=None, gt=0.0, le=1000)
    max_length: int | None = Field(default=None, ge=8, le=65536)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    max_train_samples: int | None = Field(default=None, ge=1)
    max_eval_samples: int | None = Field(default=None, ge=1)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    seed: int = Field(default=3407, ge=0, le=2**32 - 1)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    distill: DistillConfig | None = Field(
        default=None,
        description="Distillation: the student also matches a teacher fine-tuned on the same task "
        "(logits at a temperature; optionally hidden states layer to layer).",
    )

    @field_validator("masks")
    @classmethod
    def _no_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a folder path or left out")
        return v
