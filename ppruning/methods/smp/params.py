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
    steps: int = Field(default=30000, ge=1, le=10_000_000, description="Training steps (the paper: 30,000 on GLUE).")
    train_batch_size: int = Field(
        default=32, ge=1, le=4096, description="Labelled rows per training step (not the sampling block's batch_size)."
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
    learning_rate: float = Field(default=2e-2, gt=0.0, le=10.0, description="AdamW learning rate of the scores.")
    head_learning_rate: float = Field(
        default=1e-3, gt=0.0, le=10.0, description="AdamW learning rate of the new classifier (head 'new')."
    )
    lambda_final: float = Field(
        default=400.0, ge=0.0, le=1e6, description="Final weight of mean(sigmoid(S)), reached on a cubic ramp."
    )
    warmup_fraction: float = Field(default=0.0, ge=0.0, lt=1.0, description="Steps at v = 1 before the ramp.")
    ramp_fraction: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Steps of the cubic ramps of v and lambda (the rest holds v)."
    )
    score_init: float = Field(default=0.0, ge=-100.0, le=100.0, description="Initial value of every score.")
    score_start: Literal["constant", "magnitude"] = Field(
        default="constant",
        description="'constant': every score starts at score_init (the paper); 'magnitude': each matrix's scores "
        "start at score_init + |W| / mean(|W|), so the first masks are magnitude pruning and training reorders them "
        "(for short training budgets).",
    )
    temperature: float = Field(default=1.0, gt=0.0, le=1000.0, description="p in SMP-S's mean(sigmoid(S / p)).")
    distill: DistillConfig | None = Field(
        default=None, description="A fine-tuned teacher; the loss becomes 0.5 CE + 0.5 T^2 KL (T = 2) by default."
    )
