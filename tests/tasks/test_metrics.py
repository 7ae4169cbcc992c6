"""Metrics against values worked out by hand on fixed predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppruning.tasks import get_task
from ppruning.tasks.metrics import classification_metrics, perplexity, regression_metrics
from ppruning.tasks.squad_scoring import normalize_answer, squad_scores, token_f1


def logits_for(predictions: list[int], classes: int = 2) -> np.ndarray:
    return np.eye(classes)[predictions]


def test_mrpc_accuracy_and_f1_of_the_positive_class():
    # labels 1 1 0 0 1, predictions 1 0 0 1 1: TP=2 FP=1 FN=1 TN=1
    m = classification_metrics(get_task("mrpc"), logits_for([1, 0, 0, 1, 1]), np.array([1, 1, 0, 0, 1]))
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 / 3)  # P = 2/3, R = 2/3


def test_cola_matthews_correlation():
    # TP=2 FP=1 FN=1 TN=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    m = classification_metrics(get_task("cola"), logits_for([1, 0, 0, 1, 1]), np.array([1, 1, 0, 0, 1]))
    assert m["matthews_correlation"] == pytest.approx(1 / 6)


def test_hidden_labels_are_left_out_of_the_score():
    m = classification_metrics(get_task("sst2"), logits_for([1, 0, 1]), np.array([1, -1, 0]))
    assert m["accuracy"] == pytest.approx(0.5)


def test_stsb_pearson_spearman_and_their_mean():
    # predictions 1 2 3 4, labels 1 2 3 5: ranks agree (spearman 1); pearson by hand
    p = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 2.0, 3.0, 5.0])
    pc, yc = p - p.mean(), y - y.mean()  # [-1.5 -.5 .5 1.5], [-1.75 -.75 .25 2.25]
    expected = (pc @ yc) / math.sqrt((pc @ pc) * (yc @ yc))  # 6.5 / sqrt(5 * 8.75)
    m = regression_metrics(p, y)
    assert m["pearson"] == pytest.approx(6.5 / math.sqrt(43.75)) == pytest.approx(expected)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["pearson_spearman_mean"] == pytest.approx((m["pearson"] + 1.0) / 2)


def test_a_constant_prediction_has_zero_correlation_not_nan():
    assert regression_metrics(np.ones(4), np.arange(4.0))["pearson"] == 0.0


def test_perplexity_is_exp_of_mean_nll():
    assert perplexity(math.log(20.0)) == pytest.approx(20.0)
    assert perplexity(1e6) == math.inf


def test_squad_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear") == "apple pear"


def test_squad_v1_em_and_f1_take_the_best_gold_answer():
    refs = {"q1": {"text": ["Denver Broncos", "the Broncos"]}, "q2": {"text": ["Santa Clara, California"]}}
    preds = {"q1": "Broncos", "q2": "Santa Clara"}
    # q1: EM 1 against "the Broncos"; q2: EM 0, F1: P=2/2, R=2/3 -> 0.8
    s = squad_scores(preds, refs)
    assert s["exact_match"] == pytest.approx(50.0)
    assert s["f1"] == pytest.approx(100 * (1.0 + 0.8) / 2)
    assert "no_answer_f1" not in s


def test_squad_v2_no_answer_questions_score_only_the_empty_prediction():
    refs = {"a": {"text": ["Paris"]}, "b": {"text": []}, "c": {"text": []}, "d": {"text": ["the river Seine"]}}
    preds = {"a": "", "b": "", "c": "London", "d": "Seine river"}
    # a: 0/0; b: 1/1; c: 0/0; d: EM 0, F1: tokens {seine, river} vs {river, seine} -> 1.0
    s = squad_scores(preds, refs)
    assert s["exact_match"] == pytest.approx(25.0)
    assert s["f1"] == pytest.approx(50.0)
    assert s["no_answer_exact_match"] == pytest.approx(50.0) and s["no_answer_total"] == 2
    assert s["has_answer_f1"] == pytest.approx(50.0)
    assert token_f1("", "Paris") == 0.0 and token_f1("", "") == 1.0


def test_a_missing_prediction_scores_zero():
    assert squad_scores({}, {"q": {"text": ["x"]}}) == {"exact_match": 0.0, "f1": 0.0}
