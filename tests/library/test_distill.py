"""The shared distillation loss: the paper's definition, its limits, and its gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ppruning.model.refs import ModelRef
from ppruning.recovery.distill import DistillConfig, distillation_loss, hidden_loss, soft_loss


def _config(**kw: float) -> DistillConfig:
    return DistillConfig(teacher=ModelRef(id="teacher"), **kw)


def test_defaults_are_the_papers_half_ce_half_t_squared_kl_at_t2() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 3), torch.randn(8, 3)
    labels = torch.randint(0, 3, (8,))
    hard = F.cross_entropy(student, labels)
    p_t = F.softmax(teacher / 2, dim=-1)
    kl = (p_t * (p_t.log() - F.log_softmax(student / 2, dim=-1))).sum(-1).mean()
    expected = 0.5 * hard + 0.5 * 4 * kl
    assert torch.allclose(distillation_loss(hard, student, teacher, _config()), expected, atol=1e-6)


def test_soft_loss_is_zero_for_identical_logits_and_positive_otherwise() -> None:
    logits = torch.randn(4, 5)
    assert soft_loss(logits, logits.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_loss(logits, logits.flip(-1), 2.0).item() > 0


def test_alpha_zero_is_the_hard_loss_and_the_teacher_gets_no_gradient() -> None:
    student = torch.randn(4, 2, requires_grad=True)
    teacher = torch.randn(4, 2, requires_grad=True)
    hard = F.cross_entropy(student, torch.tensor([0, 1, 0, 1]))
    assert distillation_loss(hard, student, teacher, _config(alpha=0.0)).item() == pytest.approx(hard.item())
    distillation_loss(hard, student, teacher, _config(alpha=1.0)).backward()
    assert student.grad is not None and teacher.grad is None


def test_regression_heads_match_outputs_by_squared_error() -> None:
    student, teacher = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.0]])
    assert soft_loss(student, teacher, 2.0).item() == pytest.approx(0.125)


def test_hidden_term_needs_the_hidden_states_and_layers_must_match() -> None:
    hard = torch.tensor(1.0)
    logits = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="hidden states"):
        distillation_loss(hard, logits, logits, _config(hidden_weight=1.0))
    hs = (torch.ones(2, 3), torch.zeros(2, 3))
    assert hidden_loss(hs, (torch.zeros(2, 3), torch.zeros(2, 3))).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cannot be matched"):
        hidden_loss(hs, hs[:1])


# --------------------------------------------------------------------------- the one teacher loader


def _teacher(tiny_bert_path, folder, num_labels: int):
    """The tiny BERT saved as a sequence classifier with ``num_labels`` outputs, tokenizer beside it."""
    import shutil

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_path, num_labels=num_labels)
    model.save_pretrained(folder)
    for path in tiny_bert_path.iterdir():
        if path.is_file() and not path.name.startswith(("config", "model")):
            shutil.copy(path, folder / path.name)
    return folder


def test_the_teacher_loader_refuses_a_teacher_with_another_label_count(tiny_bert_path, tmp_path) -> None:
    """Fine-tuning and SMP load teachers through this one function: a 3-class teacher for a 2-class
    student is named as the input at fault, before its weights are read (it used to fail in the loss,
    or load with a fresh random head)."""
    from ppruning.errors import InvalidConfigError
    from ppruning.recovery.distill import load_teacher
    from ppruning.tasks import get_task

    teacher = _teacher(tiny_bert_path, tmp_path / "t3", num_labels=3)
    config = DistillConfig(teacher=ModelRef(id=str(teacher)))
    with pytest.raises(InvalidConfigError, match="3 outputs, the student 2") as err:
        load_teacher(config, get_task("text-classification"), outputs=2, label_names=["neg", "pos"])
    assert err.value.field == "distill.teacher"


def test_the_teacher_loader_gives_a_frozen_teacher_in_eval_mode(tiny_bert_path, tmp_path) -> None:
    from ppruning.recovery.distill import load_teacher
    from ppruning.tasks import get_task

    teacher = _teacher(tiny_bert_path, tmp_path / "t2", num_labels=2)
    config = DistillConfig(teacher=ModelRef(id=str(teacher)))
    model = load_teacher(config, get_task("text-classification"), outputs=2, label_names=["neg", "pos"])
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.config.num_labels == 2
