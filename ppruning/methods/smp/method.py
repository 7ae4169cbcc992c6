"""SMP, static model pruning (Jiang et al., ACL 2023): learn which weights to drop, keep every weight frozen.

ALGORITHMS.md, section SMP. Per pruned matrix (Q, K, V, attention output, FFN in, FFN
out of every layer) a score matrix S is the only thing trained; the forward pass uses
``W' = TopK(S, v) * W`` with a straight-through gradient (:mod:`ppruning.methods.smp.scores`).
The keep fraction v falls from 1 to ``1 - params_reduction`` on a cubic ramp, then holds;
the loss is the task loss (or the shared distillation loss with a teacher) plus
``lambda_t * mean(sigmoid(S))``, lambda ramped cubically from 0 to ``lambda_final``;
AdamW on the scores only. ``smp-l`` keeps the same v in every matrix; ``smp-s`` gives
each layer of a matrix type a share from its scores, clamped to 1.

The head (:mod:`ppruning.methods.smp.classifier`): the MLM head at [CLS] restricted to one label
word per class (the paper), or ``head: "new"``, a fresh classifier trained with its own
learning rate while the encoder stays frozen. The result is weight masks: the pipeline
writes packed bit masks with their manifest and the dense checkpoint with W' baked in.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ppruning.errors import InvalidConfigError
from ppruning.methods.contract import WEIGHT_MASK_ARTIFACTS, MethodContext, MethodSpec
from ppruning.methods.registry import register_method
from ppruning.methods.smp.classifier import (
    Classifier,
    check_head,
    head_parameters,
    label_word_ids,
    label_words_for,
    load_head_model,
    probe_start,
)
from ppruning.methods.smp.params import HeadParams, SMPParams
from ppruning.methods.smp.scores import (
    MATRIX_TYPES,
    SUPPORTED_MODEL_TYPES,
    PrunableLinear,
    Ramp,
    ScoredWeight,
    allocate_keep,
    density_table,
    keep_fraction_at,
    lambda_at,
    prunable_linears,
)
from ppruning.methods.smp.training import train_in_context
from ppruning.model.refs import ModelRef
from ppruning.recovery.distill import DistillConfig, distillation_loss
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.registry import TaskInfo
from ppruning.units.weight_masks import WeightMasks


def check_labels_task(task: TaskInfo) -> None:
    if task.kind != "classification":
        raise InvalidConfigError(
            f"task {task.name!r} is {task.kind}; this method learns from class labels (a classification task)",
            field="task.name",
        )


def check_smp(params: HeadParams, model: ModelRef, task: TaskInfo, hf_config: Any) -> None:
    check_labels_task(task)
    check_head(params.head, params.label_words, model, task, hf_config)


def load_model(params: HeadParams, ref: ModelRef, task: TaskInfo, label_names: list[str] | None) -> Any:
    return load_head_model(params.head, ref, task, label_names)


def make_classifier(ctx: MethodContext, params: HeadParams) -> tuple[Classifier, list[str] | None]:
    if params.head != "mlm":
        return Classifier(ctx.model, "new", None), None
    words = label_words_for(ctx.task, params.label_words)
    if ctx.label_names and len(words) != len(ctx.label_names):
        raise InvalidConfigError(
            f"params.label_words: the data has {len(ctx.label_names)} classes, got {len(words)} words",
            field="params.label_words",
        )
    return Classifier(ctx.model, "mlm", label_word_ids(ctx.tokenizer, words)), words


def start_head(ctx: MethodContext, params: HeadParams, device: torch.device) -> dict[str, Any] | None:
    """The new classifier's linear-probe start (head 'new', ``head_start: probe``); None otherwise."""
    if params.head != "new" or params.head_start != "probe":
        return None
    assert ctx.examples is not None
    collate, size = PadCollator(ctx.tokenizer), params.train_batch_size
    batches = (
        {k: v.to(device) for k, v in collate(list(ctx.examples[i : i + size])).items()}
        for i in range(0, len(ctx.examples), size)
    )
    ctx.progress.event("fitting the new classifier on the frozen model's features (linear probe)")
    return probe_start(ctx.model, list(batches))


def load_teacher(distill: DistillConfig | None, device: torch.device) -> nn.Module | None:
    if distill is None:
        return None
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(distill.teacher.id, revision=distill.teacher.revision)
    return teacher.to(device).eval()


def task_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], teacher: nn.Module | None, distill: Any) -> Any:
    hard = F.cross_entropy(logits, batch["labels"])
    if teacher is None:
        return hard
    with torch.no_grad():
        teacher_logits = teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return distillation_loss(hard, logits, teacher_logits, distill)


class Scores:
    """The score parametrisations of every prunable matrix and how their keep fractions are set."""

    def __init__(
        self, linears: list[PrunableLinear], init: float, variant: str, temperature: float, start: str = "constant"
    ) -> None:
        self.linears, self.variant, self.temperature = linears, variant, temperature
        self.params: list[ScoredWeight] = []
        for lin in linears:
            lin.module.weight.requires_grad_(False)
            scored = ScoredWeight(lin.module.weight.shape, init, lin.module.weight.device)
            if start == "magnitude":
                with torch.no_grad():
                    magnitude = lin.module.weight.abs()
                    scored.scores.add_(magnitude / magnitude.mean().clamp_min(1e-12))
            parametrize.register_parametrization(lin.module, "weight", scored)
            self.params.append(scored)

    def set_keep(self, keep: float) -> dict[str, list[float]]:
        """Every matrix's keep fraction for overall ``keep``; per type, the layers' fractions."""
        by_type: dict[str, list[ScoredWeight]] = {kind: [] for kind in MATRIX_TYPES}
        for lin, scored in zip(self.linears, self.params, strict=True):
            by_type[lin.kind].append(scored)
        shares = {}
        for kind, group in by_type.items():
            if self.variant == "smp-l":
                fractions = [keep] * len(group)
            else:
                with torch.no_grad():
                    weights = [float(torch.sigmoid(s.scores / self.temperature).mean()) for s in group]
                fractions = allocate_keep(keep, weights)
            for scored, fraction in zip(group, fractions, strict=True):
                scored.keep = fraction
            shares[kind] = [round(f, 6) for f in fractions]
        return shares

    def regulariser(self) -> torch.Tensor:
        total = sum(torch.sigmoid(s.scores).sum() for s in self.params)
        return total / sum(s.scores.numel() for s in self.params)

    def bake(self) -> OrderedDict[str, torch.Tensor]:
        """Final masks; the parametrisations removed with ``W' = M * W`` left in the weights."""
        masks = OrderedDict((lin.name, s.mask()) for lin, s in zip(self.linears, self.params, strict=True))
        for lin in self.linears:
            parametrize.remove_parametrizations(lin.module, "weight", leave_parametrized=True)
        return masks


def compute_weight_masks(ctx: MethodContext) -> WeightMasks:
    params: SMPParams = ctx.params
    assert ctx.examples is not None and ctx.target is not None, "SMP trains on labelled rows"
    model, device = ctx.model, next(ctx.model.parameters()).device
    classifier, words = make_classifier(ctx, params)
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.details["head_start"] = start_head(ctx, params, device)
    linears = prunable_linears(model)
    scores = Scores(linears, params.score_init, params.variant, params.temperature, params.score_start)
    groups: list[dict[str, Any]] = [{"params": [s.scores for s in scores.params], "lr": params.learning_rate}]
    head = head_parameters(model) if params.head == "new" else []
    for p in head:
        p.requires_grad_(True)
    if head:
        groups.append({"params": head, "lr": params.head_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    teacher = load_teacher(params.distill, device)
    final = 1.0 - ctx.target.value
    ramp = Ramp(int(params.warmup_fraction * params.steps), max(1, int(params.ramp_fraction * params.steps)))
    model.train()

    def step_fn(step: int, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        keep, lam = keep_fraction_at(step, final, ramp), lambda_at(step, params.lambda_final, ramp)
        scores.set_keep(keep)
        loss = task_loss(classifier(batch), batch, teacher, params.distill)
        total = loss + lam * scores.regulariser()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return float(loss.detach()), {"keep": keep, "lambda": lam}

    def state() -> dict[str, Any]:
        return {
            "scores": [s.scores.detach().cpu() for s in scores.params],
            "head": [p.detach().cpu() for p in head],
            "optimizer": optimizer.state_dict(),
        }

    def restore(saved: dict[str, Any]) -> None:
        with torch.no_grad():
            for s, value in zip(scores.params, saved["scores"], strict=True):
                s.scores.copy_(value)
            for p, value in zip(head, saved["head"], strict=True):
                p.copy_(value)
        optimizer.load_state_dict(saved["optimizer"])

    run = train_in_context(ctx, params, stage="train", device=device, step_fn=step_fn, state=state, restore=restore)
    ctx.progress.start_stage("select", total=1)
    shares = scores.set_keep(final)
    masks = scores.bake()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.details["density"] = density_table(masks, linears)
    ctx.details["training"] = run
    ctx.details["keep_fraction_per_layer"] = shares
    ctx.details["teacher"] = params.distill.teacher.model_dump() if params.distill else None
    ctx.progress.update(1)
    return WeightMasks(masks, model, manifest=_manifest(params, words, ctx.label_names))


def _manifest(params: HeadParams, words: list[str] | None, label_names: list[str] | None) -> dict[str, Any]:
    return {"head": params.head, "label_words": words, "label_names": label_names}


def mask_learning_spec(
    name: str, summary: str, params_model: type[HeadParams], run: Any, stages: tuple[str, ...]
) -> MethodSpec:
    """The declaration SMP and its baseline share: unstructured masks of the same matrices, learned on
    labelled rows with the same heads, checks, outputs and resuming."""
    return MethodSpec(
        name=name,
        summary=summary,
        kind="unstructured",
        needs="labels",
        params_model=params_model,
        run=run,
        stages=stages,
        targets=frozenset({"params"}),
        artifacts=WEIGHT_MASK_ARTIFACTS,
        resumable=True,
        model_types=SUPPORTED_MODEL_TYPES,
        load_model=load_model,
        check=check_smp,
    )


SPEC = register_method(
    mask_learning_spec(
        "smp",
        "SMP (static model pruning): learn unstructured weight masks with the pre-trained weights frozen "
        "(scores, straight-through top-k, optional distillation); variants smp-s and smp-l.",
        SMPParams,
        compute_weight_masks,
        ("train", "select"),
    )
)
