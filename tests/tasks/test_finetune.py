"""Fine-tuning behaviour: masks cut before training, cancellation, selection, labels, settings."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerControl, TrainerState

from ppruning import load_pruned
from ppruning.errors import InvalidConfigError, JobCancelled
from ppruning.finetune import finetune
from ppruning.finetune.callbacks import SelectionCallback
from ppruning.finetune.hparams import resolve_hparams
from ppruning.model.refs import ModelRef
from ppruning.progress import Progress
from ppruning.run.config import FinetuneConfig
from ppruning.tasks import get_task
from ppruning.tasks.refs import TaskRef
from ppruning.units.masks import Masks, save_masks
from tests.conftest import FIXTURES

FAST = dict(epochs=1, batch_size=16, learning_rate=1e-3, max_length=24, device="cpu")


def test_a_full_model_with_mask_files_is_cut_before_training(task_datasets, tiny_bert_path, tmp_path):
    heads = torch.ones(3, 4)
    heads[0, :2] = 0
    heads[2, 1:] = 0
    neurons = torch.ones(3, 64)
    neurons[:, 32:] = 0
    save_masks(Masks(heads, neurons), tmp_path / "masks")
    dense = finetune(
        FinetuneConfig(model=ModelRef(id=str(tiny_bert_path)), task=TaskRef(name="sst2"), **FAST), tmp_path / "dense"
    )
    cut = finetune(
        FinetuneConfig(
            model=ModelRef(id=str(tiny_bert_path)), task=TaskRef(name="sst2"), masks=str(tmp_path / "masks"), **FAST
        ),
        tmp_path / "cut",
    )
    assert cut.report["pruned"] and not dense.report["pruned"]
    assert cut.report["parameters"] < dense.report["parameters"]
    model = load_pruned(cut.model_dir)
    layer0 = model.bert.encoder.layer[0]
    assert layer0.attention.self.query.out_features == 2 * 8  # two heads of width 8 left
    assert layer0.intermediate.dense.out_features == 32


class StopAfter(Progress):
    def __init__(self, steps: int) -> None:
        self.steps, self.seen, self.stages = steps, 0, []
        self.updates: list[dict] = []

    def start_stage(self, stage, total=None, message=""):
        self.stages.append(stage)

    def update(self, step, total=None, **metrics):
        self.updates.append({"step": step, **metrics})

    def checkpoint(self):
        self.seen += 1
        if self.seen > self.steps:
            raise JobCancelled()


def test_a_listener_can_cancel_between_steps_and_nothing_is_written(task_datasets, tiny_bert_path, tmp_path):
    progress = StopAfter(2)
    with pytest.raises(JobCancelled):
        finetune(
            FinetuneConfig(
                model=ModelRef(id=str(tiny_bert_path)),
                task=TaskRef(name="mrpc"),
                **{**FAST, "epochs": 5, "batch_size": 4},
            ),
            tmp_path / "out",
            progress,
        )
    assert "finetune" in progress.stages and len(progress.updates) == 3
    assert "loss" in progress.updates[-1]  # logged at step 1, reported from the next step on
    assert not (tmp_path / "out" / "model").exists() and not (tmp_path / "out" / "metrics.json").exists()


def test_custom_string_labels_are_the_saved_models_label_names(tiny_bert_path, tmp_path):
    files = {s: str(FIXTURES / "custom" / f"reviews_{s}.csv") for s in ("train", "validation")}
    ref = TaskRef(name="text-classification", data_files=files, text_column="review", label_column="sentiment")
    result = finetune(FinetuneConfig(model=ModelRef(id=str(tiny_bert_path)), task=ref, **FAST), tmp_path)
    model = load_pruned(result.model_dir)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert set(result.metrics) == {"validation"}


def test_half_precision_is_refused_off_cuda(tiny_bert_path, tmp_path):
    cfg = FinetuneConfig(
        model=ModelRef(id=str(tiny_bert_path)), task=TaskRef(name="sst2"), precision="fp16", device="cpu"
    )
    with pytest.raises(InvalidConfigError) as err:
        finetune(cfg, tmp_path)
    assert err.value.field == "precision"


def test_the_paper_preset_takes_the_tasks_reference_settings_and_explicit_values_win():
    info = get_task("wikitext-2")
    ref = ModelRef(id="gpt2")
    hp = resolve_hparams(FinetuneConfig(model=ref, task=TaskRef(name="wikitext-2"), preset="paper"), info)
    assert (hp.learning_rate, hp.batch_size, hp.epochs, hp.max_length) == (5e-4, 32, 8, 512)
    hp = resolve_hparams(FinetuneConfig(model=ref, task=TaskRef(name="wikitext-2"), preset="paper", epochs=2), info)
    assert hp.epochs == 2
    assert resolve_hparams(FinetuneConfig(model=ref, task=TaskRef(name="sst2")), get_task("sst2")).max_length == 64


def test_selection_keeps_the_best_epoch_and_stops_after_the_patience():
    model = torch.nn.Linear(2, 1)
    scores = iter([0.5, 0.9, 0.7, 0.95])
    seen = []
    cb = SelectionCallback(lambda m: {"accuracy": next(scores)}, "accuracy", True, patience=1, on_score=seen.append)
    state, control = TrainerState(), TrainerControl()
    weights = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        weights.append(model.weight.clone())
        state.epoch = float(epoch)
        cb.on_epoch_end(None, state, control, model=model)
        if control.should_training_stop:
            break
    assert epoch == 3 and control.should_training_stop  # epoch 3 did not improve on epoch 2: patience 1 stops
    cb.restore_best(model)
    assert cb.best_epoch == 2.0 and torch.equal(model.weight, weights[1])
    assert [r["selection"]["accuracy"] for r in seen] == [0.5, 0.9, 0.7]


def test_lower_is_better_for_perplexity():
    cb = SelectionCallback(lambda m: {}, "perplexity", False, None, lambda r: None)
    cb.best_value = 10.0
    assert cb._better(9.0) and not cb._better(11.0) and not cb._better(float("nan"))


def test_distillation_from_an_identical_teacher_costs_nothing_and_is_recorded(task_datasets, tiny_bert_path, tmp_path):
    """Student and teacher start equal: with alpha=1 the loss is the soft (and hidden) term, which only the
    student's dropout keeps from zero; far below the label loss of the same model."""
    from ppruning.recovery.distill import DistillConfig

    dense = finetune(
        FinetuneConfig(model=ModelRef(id=str(tiny_bert_path)), task=TaskRef(name="sst2"), **FAST), tmp_path / "dense"
    )
    same = {**FAST, "learning_rate": 1e-9}
    teacher = DistillConfig(teacher=ModelRef(id=str(dense.model_dir)), alpha=1.0, hidden_weight=1.0)
    distilled = finetune(
        FinetuneConfig(model=ModelRef(id=str(dense.model_dir)), task=TaskRef(name="sst2"), distill=teacher, **same),
        tmp_path / "distilled",
    )
    plain = finetune(
        FinetuneConfig(model=ModelRef(id=str(dense.model_dir)), task=TaskRef(name="sst2"), **same), tmp_path / "plain"
    )
    assert distilled.report["final_train_loss"] < 0.3 * plain.report["final_train_loss"]
    assert distilled.report["distill"]["alpha"] == 1.0 and plain.report["distill"] is None
