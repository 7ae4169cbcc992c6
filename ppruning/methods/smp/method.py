"""SMP, static model pruning (Jiang et al., ACL 2023): learn which weights to drop, keep every weight frozen.

docs/algorithms.md, SMP. Per pruned matrix (Q, K, V, attention output, FFN in, FFN
out of every layer) a score matrix S is the only thing trained; the forward pass uses
``W' = TopK(S, v) * W`` with a straight-through gradient (:mod:`ppruning.methods.smp.scores`).
The schedule is the authors' (:mod:`ppruning.methods.smp.schedule`): the keep fraction v
falls from 1 to ``1 - params_reduction`` on a cubic ramp and is held for the last
``hold_steps``; the loss is the task loss (or the shared distillation loss with a teacher)
plus ``lambda_t`` times the mean over matrices of each matrix's mean(sigmoid(S)), lambda
rising cubically from 0 to ``lambda_final`` over the whole run; AdamW on the scores (and
a new classifier), the learning rates falling linearly to zero. ``smp-l`` keeps the same
v in every matrix; ``smp-s`` gives each layer of a matrix type a share from its scores,
clamped to 1. ``checkpoint: best_validation`` reads the masks from the hold's best
checkpoint on validation rows (:mod:`ppruning.methods.smp.validation`).

The classifier (:mod:`ppruning.methods.smp.classifier`): the MLM head at [CLS] restricted
to one label word per class (the paper), or ``head: "new"``, a fresh classifier trained
with its own learning rate while the encoder stays frozen. The result is weight masks: the
prune run writes packed bit masks with their manifest and the dense checkpoint with W'
baked in (:mod:`ppruning.run.outputs.unstructured`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ppruning.errors import InvalidConfigError
from ppruning.methods.contract import MethodContext
from ppruning.methods.registry import register_method
from ppruning.methods.smp.classifier import classifier_parameters, make_classifier, start_classifier
from ppruning.methods.smp.mask_learning import check_smp, manifest, mask_learning_spec
from ppruning.methods.smp.params import SMPParams
from ppruning.methods.smp.schedule import Schedule, default_temperature, set_learning_rates, total_steps
from ppruning.methods.smp.scores import Scores, density_table, prunable_linears
from ppruning.methods.smp.training import train_in_context
from ppruning.methods.smp.validation import BestCheckpoint, accuracy, selection_split, validation_rows
from ppruning.model.refs import ModelRef
from ppruning.recovery.distill import DistillConfig, distillation_loss, load_teacher
from ppruning.tasks.collate import PadCollator
from ppruning.tasks.registry import TaskInfo
from ppruning.units.weight_masks import WeightMasks


def check_teacher(distill: DistillConfig | None) -> None:
    """SMP distils the teacher's logits only: its loss passes no hidden states (the MLM classifier reads [CLS])."""
    if distill is not None and distill.hidden_weight > 0.0:
        raise InvalidConfigError(
            "params.distill.hidden_weight: SMP distils the teacher's logits only, not its hidden states; "
            "use hidden_weight 0",
            field="params.distill.hidden_weight",
        )


def check(params: SMPParams, model: ModelRef, task: TaskInfo, hf_config: Any) -> None:
    """Submission checks: the teacher, then what SMP shares with its baseline (task, classifier)."""
    check_teacher(params.distill)
    check_smp(params, model, task, hf_config)


def task_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], teacher: nn.Module | None, distill: Any) -> Any:
    hard = F.cross_entropy(logits, batch["labels"])
    if teacher is None:
        return hard
    with torch.no_grad():
        teacher_logits = teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return distillation_loss(hard, logits, teacher_logits, distill)


def compute_weight_masks(ctx: MethodContext) -> WeightMasks:
    params: SMPParams = ctx.params
    assert ctx.examples is not None and ctx.target is not None, "SMP trains on labelled rows"
    model, device = ctx.model, next(ctx.model.parameters()).device
    classifier, words = make_classifier(ctx, params)
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.details["head_start"] = start_classifier(ctx, params, device)
    final = 1.0 - ctx.target.value
    temperature = params.temperature if params.temperature is not None else default_temperature(final)
    linears = prunable_linears(model)
    scores = Scores(linears, params.score_init, params.variant, temperature, params.score_start)
    groups: list[dict[str, Any]] = [{"params": [s.scores for s in scores.params], "lr": params.learning_rate}]
    trained_classifier = classifier_parameters(model) if params.head == "new" else []
    for p in trained_classifier:
        p.requires_grad_(True)
    if trained_classifier:
        groups.append({"params": trained_classifier, "lr": params.head_learning_rate})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    base_lrs = [g["lr"] for g in groups]
    teacher = None
    if params.distill is not None:
        classes = len(ctx.label_names) if ctx.label_names else None
        teacher = load_teacher(
            params.distill, ctx.task, outputs=classes, label_names=ctx.label_names, student_tokenizer=ctx.tokenizer
        ).to(device)
    schedule = Schedule.for_run(
        total_steps(params, len(ctx.examples)), params.warmup_fraction, params.hold_steps, params.lr_schedule
    )
    best, rows, collate = None, [], PadCollator(ctx.tokenizer)
    if params.checkpoint == "best_validation":
        ctx.progress.event(f"reading validation rows ({selection_split(ctx)}) to choose the hold's best checkpoint")
        rows = validation_rows(ctx, params.eval_rows)
        best = BestCheckpoint(selection_split(ctx), len(rows))
    model.train()

    def weights() -> dict[str, Any]:
        return {
            "scores": [s.scores.detach().cpu().clone() for s in scores.params],
            "head": [p.detach().cpu().clone() for p in trained_classifier],
        }

    def load_weights(saved: dict[str, Any]) -> None:
        with torch.no_grad():
            for s, value in zip(scores.params, saved["scores"], strict=True):
                s.scores.copy_(value)
            for p, value in zip(trained_classifier, saved["head"], strict=True):
                p.copy_(value)

    def step_fn(step: int, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
        keep, lam = schedule.keep(step, final), schedule.lam(step, params.lambda_final)
        set_learning_rates(optimizer, base_lrs, schedule.lr_factor(step))
        scores.set_keep(keep)
        loss = task_loss(classifier(batch), batch, teacher, params.distill)
        total = loss + lam * scores.regulariser()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        done = step + 1
        set_learning_rates(optimizer, base_lrs, schedule.lr_factor(done))  # the scheduler's step: 0 after the last
        due = done % params.eval_every == 0 or done == schedule.total
        if best is not None and done > schedule.hold_start and due:
            scores.set_keep(schedule.keep(done, final))
            score = accuracy(classifier, model, rows, collate, params.train_batch_size, device)
            best.offer(done, score, weights)
        return float(loss.detach()), {"keep": keep, "lambda": lam, "lr": optimizer.param_groups[0]["lr"]}

    def state() -> dict[str, Any]:
        return {**weights(), "optimizer": optimizer.state_dict(), "best": best.dump() if best else None}

    def restore(saved: dict[str, Any]) -> None:
        load_weights(saved)
        optimizer.load_state_dict(saved["optimizer"])
        if best is not None and saved.get("best"):
            best.load(saved["best"])

    run = train_in_context(
        ctx, params, stage="train", device=device, step_fn=step_fn, state=state, restore=restore,
        steps=schedule.total,
    )  # fmt: skip
    ctx.progress.start_stage("select", total=1)
    if best is not None and best.state is not None:
        load_weights(best.state)
    ctx.details["checkpoint"] = best.report() if best is not None else {"selected": "last", "step": schedule.total}
    shares = scores.set_keep(final)
    masks = scores.bake()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.details["density"] = density_table(masks, linears)
    ctx.details["training"] = run
    ctx.details["schedule"] = {**schedule.summary(), "temperature": temperature}
    ctx.details["keep_fraction_per_layer"] = shares
    ctx.details["teacher"] = params.distill.teacher.model_dump() if params.distill else None
    ctx.progress.update(1)
    return WeightMasks(masks, model, manifest=manifest(params, words, ctx.label_names))


SPEC = register_method(
    mask_learning_spec(
        "smp",
        "SMP (static model pruning): learn unstructured weight masks with the pre-trained weights frozen "
        "(scores, straight-through top-k, optional distillation); variants smp-s and smp-l.",
        SMPParams,
        compute_weight_masks,
        ("train", "select"),
        check=check,
        version="2",  # the authors' schedule and per-matrix regulariser
    )
)
