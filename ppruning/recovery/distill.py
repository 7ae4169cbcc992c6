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
or get a fresh random head), and that it reads text as the student does
(:func:`check_teacher_tokenizer`: both models see the same token ids, so ids must mean the
same tokens; the service runs the same check at submission).

On a causal LM the soft term is a KL per position over the vocabulary: only positions
whose next token is scored count (the labels' -100 and the padding are left out, as in
the hard loss), and it is computed a chunk of positions at a time
(:func:`token_kl`), so no ``[batch, sequence, vocabulary]`` softmax of either model is
ever built beside the logits themselves.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ppruning.errors import InvalidConfigError, ModelLoadError
from ppruning.model.loading import load_task_model, load_tokenizer
from ppruning.model.refs import ModelRef
from ppruning.tasks.registry import TaskInfo

#: Task kinds whose models return ``logits`` (question answering returns start/end logits).
TEACHER_TASK_KINDS = ("classification", "regression", "causal-lm")

#: Positions per chunk of the vocabulary KL: at a 49k vocabulary, about 50 MB per float32 chunk.
KL_CHUNK_POSITIONS = 256

#: Text both tokenizers must split into the same ids (cased, punctuation, digits, spaces, non-ASCII).
TOKENIZER_PROBE = "Hello, World! The 3 quick brown foxes jumped over 42 lazy dogs.  Café naïve ünïcödé"


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
    config: DistillConfig,
    info: TaskInfo,
    *,
    outputs: int | None,
    label_names: list[str] | None = None,
    student_tokenizer: Any = None,
) -> nn.Module:
    """The teacher with the task's head, frozen, in eval mode (where it was loaded: the caller moves it).

    ``outputs``: the student's number of outputs (classes; 1 for regression), checked against
    the teacher's saved head first; None skips the check (a causal LM's outputs are its vocabulary).
    ``student_tokenizer``: the tokenizer the batches are made with; the teacher's must read text
    the same way (:func:`check_teacher_tokenizer`), checked before the teacher's weights are read.
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
    if student_tokenizer is not None:
        check_teacher_tokenizer(student_tokenizer, config.teacher)
    teacher, _, _ = load_task_model(config.teacher, info, label_names=label_names)
    teacher.requires_grad_(False)
    return teacher.eval()


def tokenizer_difference(student: Any, teacher: Any) -> str | None:
    """Why two tokenizers give different ids for the same text, or None when they agree.

    Compared: the vocabulary (token -> id, added tokens included) and the ids of a probe text
    (normalisation, pre-tokenisation and merges can differ over one vocabulary). The pad
    token is not compared: the student's collator pads and the attention mask hides it.
    """
    student_vocab, teacher_vocab = student.get_vocab(), teacher.get_vocab()
    if len(student_vocab) != len(teacher_vocab):
        return f"vocabularies of {len(teacher_vocab)} (teacher) and {len(student_vocab)} (student) tokens"
    if student_vocab != teacher_vocab:
        differ = sorted(t for t in student_vocab if teacher_vocab.get(t) != student_vocab[t])[:3]
        return f"the same token has different ids (e.g. {differ})"
    student_ids, teacher_ids = student(TOKENIZER_PROBE)["input_ids"], teacher(TOKENIZER_PROBE)["input_ids"]
    if list(student_ids) != list(teacher_ids):
        return "one vocabulary, but the same text is split into different ids"
    return None


def check_teacher_tokenizer(student: Any, teacher: Any, field: str = "distill.teacher") -> None:
    """Refuse a teacher that reads text otherwise than the student (:class:`InvalidConfigError` naming ``field``).

    Teacher and student are fed the same ``input_ids``; under another tokenizer the teacher
    would see other text and the KL would teach noise, silently. ``student`` and ``teacher``
    are tokenizers, or :class:`ModelRef` (their tokenizers are loaded; an unreadable one is a
    :class:`ModelLoadError`, the teacher's naming ``field``).
    """
    if isinstance(student, ModelRef):
        student = load_tokenizer(student)
    teacher_ref = teacher if isinstance(teacher, ModelRef) else None
    if teacher_ref is not None:
        try:
            teacher = load_tokenizer(teacher_ref)
        except ModelLoadError as exc:
            exc.field = field
            raise
    reason = tokenizer_difference(student, teacher)
    if reason is not None:
        name = f"{teacher_ref.id!r} " if teacher_ref is not None else ""
        raise InvalidConfigError(
            f"the teacher {name}has another tokenizer than the student ({reason}); "
            "give a teacher that shares the student's tokenizer (the same model family and vocabulary)",
            field=field,
        )


def causal_lm_positions(labels: torch.Tensor | None, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Which positions of a causal LM's ``[batch, sequence]`` logits the KL counts (bool, same shape).

    The logits at ``t`` predict token ``t + 1`` (the model shifts the labels inside its loss),
    so position ``t`` counts when label ``t + 1`` is scored (not -100) and both tokens are real
    (attention mask 1); the last position predicts nothing. The hard loss counts the same
    positions, padding aside.
    """
    reference = labels if labels is not None else attention_mask
    if reference is None:
        raise ValueError("causal-LM positions need the labels or the attention mask")
    keep = torch.zeros(reference.shape, dtype=torch.bool, device=reference.device)
    scored = torch.ones_like(keep[:, 1:])
    if labels is not None:
        scored &= labels[:, 1:] != -100
    if attention_mask is not None:
        scored &= attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()
    keep[:, :-1] = scored
    return keep


class _ChunkedKL(torch.autograd.Function):
    """``T^2 * mean over rows of KL(softmax(teacher/T) || softmax(student/T))``, chunk by chunk.

    Forward and backward each take ``chunk`` rows at a time; autograd keeps only the two
    logits tensors (which exist anyway) and the row index, so the extra memory is a few
    ``[chunk, vocabulary]`` blocks (float32 at least). The gradient is ``T * (q - p) / rows`` per row,
    with ``q`` and ``p`` the student's and teacher's softmax at temperature ``T``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, student: torch.Tensor, teacher: torch.Tensor, rows: torch.Tensor, temperature: float, chunk: int
    ) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64, device=student.device)
        work = torch.promote_types(student.dtype, torch.float32)  # half precision upcast per chunk
        for part in rows.split(chunk):
            s = F.log_softmax(student.index_select(0, part).to(work) / temperature, dim=-1)
            t = F.log_softmax(teacher.index_select(0, part).to(work) / temperature, dim=-1)
            total += (t.exp() * (t - s)).sum().double()
        ctx.save_for_backward(student, teacher, rows)
        ctx.temperature, ctx.chunk = temperature, chunk
        return (total * temperature * temperature / rows.numel()).to(student.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        student, teacher, rows = ctx.saved_tensors
        t_ = ctx.temperature
        work = torch.promote_types(student.dtype, torch.float32)
        scale = grad.to(work) * t_ / rows.numel()
        out = torch.zeros_like(student)
        for part in rows.split(ctx.chunk):
            q = F.softmax(student.index_select(0, part).to(work) / t_, dim=-1)
            p = F.softmax(teacher.index_select(0, part).to(work) / t_, dim=-1)
            out.index_copy_(0, part, ((q - p) * scale).to(student.dtype))
        return out, None, None, None, None


def token_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    positions: torch.Tensor | None = None,
    chunk: int = KL_CHUNK_POSITIONS,
) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` averaged over the counted positions.

    ``*_logits``: ``[..., vocabulary]``; ``positions``: bool of the leading shape (None: all
    count). Computed ``chunk`` positions at a time, forward and backward (:class:`_ChunkedKL`).
    With no position counted the term is 0 (and still part of the graph).
    """
    width = student_logits.shape[-1]
    student = student_logits.reshape(-1, width)
    teacher = teacher_logits.detach().reshape(-1, width)
    if positions is None:
        rows = torch.arange(student.shape[0], device=student.device)
    else:
        rows = positions.reshape(-1).to(student.device).nonzero().squeeze(-1)
    if rows.numel() == 0:
        return student.sum() * 0.0
    return _ChunkedKL.apply(student, teacher, rows, float(temperature), max(1, int(chunk)))


def soft_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, averaged over the batch's rows
    (sequence heads) or its counted positions (causal LMs, ``positions``: :func:`token_kl`).

    For a regression head (one output) there is no distribution to match: the mean squared
    difference of the outputs stands in, without the temperature.
    """
    if student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits, teacher_logits.detach().to(student_logits.dtype))
    return token_kl(student_logits, teacher_logits, temperature, positions)  # casts a chunk at a time


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
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(1 - alpha) * hard + alpha * soft (+ hidden_weight * hidden)``.

    ``hard_loss`` is the task loss the student computed on the labels (cross-entropy, or
    MSE for regression), so every head and task keeps its own definition of it.
    ``positions``: for per-token logits (causal LMs), the positions the soft term counts
    (:func:`causal_lm_positions`).
    """
    loss = (1.0 - config.alpha) * hard_loss + config.alpha * soft_loss(
        student_logits, teacher_logits, config.temperature, positions
    )
    if config.hidden_weight > 0.0:
        if student_hidden is None or teacher_hidden is None:
            raise ValueError("hidden_weight > 0 needs the hidden states of both models (output_hidden_states=True)")
        loss = loss + config.hidden_weight * hidden_loss(student_hidden, teacher_hidden)
    return loss
