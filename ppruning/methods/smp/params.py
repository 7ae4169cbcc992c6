"""SMP's parameters, and the ones its unstructured baseline shares (head, label words, steps, resuming)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ppruning.methods.contract import MethodParams
from ppruning.recovery.distill import DistillConfig


class ClassifierParams(MethodParams):
    """The classifier and training options every mask-learning method shares.

    ``head``, ``head_start`` and ``head_learning_rate`` keep their public names (job specs and
    records use them); each is about the classifier, never an attention head.
    """

    head: Literal["mlm", "new"] = Field(
        default="mlm",
        description="'mlm': the pre-trained MLM head at [CLS] restricted to the label words (the paper); "
        "'new': a fresh classifier (for encoders saved without an MLM head).",
    )
    label_words: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=100,
        description="One single-token word per class in label-id order (head 'mlm'); default: the paper's for GLUE.",
    )
    epochs: float = Field(
        default=12.0,
        gt=0.0,
        le=10_000.0,
        description="Passes over the labelled rows (the authors' 12 on MNLI, QQP, QNLI and SST-2); "
        "ignored when 'steps' is given.",
    )
    steps: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Training steps; when given, instead of 'epochs'."
    )
    train_batch_size: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Labelled rows per training step (the authors' 64 on the large GLUE sets; "
        "not the sampling block's batch_size).",
    )
    resume_every_s: float = Field(
        default=300.0, gt=0.0, le=86400.0, description="Save the training state for a restart this often (seconds)."
    )
    head_start: Literal["probe", "random"] = Field(
        default="probe",
        description="Head 'new' only: 'probe' starts the classifier's last layer at the logistic-regression fit of "
        "the frozen dense model's features on the training rows (one forward pass); 'random': the fresh "
        "initialisation.",
    )


class SMPParams(ClassifierParams):
    variant: Literal["smp-s", "smp-l"] = Field(
        default="smp-s",
        description="'smp-s': per matrix type, layers share the keep budget by their scores; "
        "'smp-l': the same keep fraction in every matrix.",
    )
    learning_rate: float = Field(
        default=2e-2,
        gt=0.0,
        le=10.0,
        description="AdamW learning rate of the scores (the authors' 2e-2), decayed as 'lr_schedule' says.",
    )
    head_learning_rate: float = Field(
        default=1e-3,
        gt=0.0,
        le=10.0,
        description="AdamW learning rate of the new classifier (head 'new'), decayed with the scores'.",
    )
    lr_schedule: Literal["linear", "constant"] = Field(
        default="linear",
        description="'linear': both learning rates fall linearly to zero over the run (the authors' trainer); "
        "'constant': they stay.",
    )
    lambda_final: float = Field(
        default=400.0,
        ge=0.0,
        le=1e6,
        description="Final weight of the regulariser (the mean over pruned matrices of each one's mean sigmoid "
        "of its scores), reached on a cubic rise over the whole run.",
    )
    warmup_fraction: float = Field(default=0.0, ge=0.0, lt=1.0, description="Steps at v = 1 before the ramp.")
    hold_steps: int = Field(
        default=30_000,
        ge=0,
        le=10_000_000,
        description="Final steps at the target keep fraction (the authors' 6 x 5,000); at most half the run. "
        "The keep fraction falls on a cubic ramp between the warmup and the hold.",
    )
    score_init: float = Field(default=0.0, ge=-100.0, le=100.0, description="Initial value of every score.")
    score_start: Literal["constant", "magnitude"] = Field(
        default="constant",
        description="'constant': every score starts at score_init (the paper); 'magnitude': each matrix's scores "
        "start at score_init + |W| / mean(|W|), so the first masks are magnitude pruning and training reorders them "
        "(for short training budgets).",
    )
    temperature: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="p in SMP-S's mean(sigmoid(S / p)); default as the authors set it: 4 at 70% or more "
        "remaining, else 1.",
    )
    checkpoint: Literal["last", "best_validation"] = Field(
        default="last",
        description="The scores the masks are read from: those of the last step, or, during the hold, those "
        "scoring best on the task's validation split (the paper's numbers are dev-selected).",
    )
    eval_every: int = Field(
        default=1000,
        ge=1,
        le=10_000_000,
        description="checkpoint 'best_validation': steps between evaluations in the hold (the authors' 1,000).",
    )
    eval_rows: int = Field(
        default=2000,
        ge=1,
        le=1_000_000,
        description="checkpoint 'best_validation': validation rows scored (a seeded sample when there are more).",
    )
    distill: DistillConfig | None = Field(
        default=None, description="A fine-tuned teacher; the loss becomes 0.5 CE + 0.5 T^2 KL (T = 2) by default."
    )
