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
