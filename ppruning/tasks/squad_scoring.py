"""SQuAD exact match and F1, as the official v1.1 and v2.0 evaluation scripts define them.

Written here because the ``evaluate`` package fetches its metric scripts at run time.
Normalisation: lower case, drop punctuation, drop the articles a/an/the, collapse
white space. Each prediction scores its best match over the gold answers. v2.0: a
question without gold answers has the gold answer "" (no answer), so predicting ""
scores 1 and anything else 0, and F1 against an empty side is 1 only when both are
empty. Scores are percentages, as the scripts print them.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:  # no-answer on either side: right only if both are empty
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Mapping[str, Sequence[str]] | Sequence[str]) -> list[str]:
    """The gold answers that normalise to something; [""] when there are none (v2 no-answer)."""
    texts = answers["text"] if isinstance(answers, Mapping) else answers
    kept = [t for t in texts if normalize_answer(t)]
    return kept or [""]


def squad_scores(
    predictions: Mapping[str, str], references: Mapping[str, Mapping[str, Sequence[str]] | Sequence[str]]
) -> dict[str, float]:
    """EM and F1 (0-100) over ``references`` (id -> answers); a missing prediction scores 0.

    When some questions have no answer (v2), the has-answer and no-answer subsets are
    reported too, as the v2.0 script does.
    """
    if not references:
        return {"exact_match": 0.0, "f1": 0.0}
    em: dict[str, float] = {}
    f1: dict[str, float] = {}
    has_answer: dict[str, bool] = {}
    for qid, answers in references.items():
        golds = gold_texts(answers)
        has_answer[qid] = golds != [""]
        prediction = predictions.get(qid)
        if prediction is None:
            em[qid] = f1[qid] = 0.0
            continue
        em[qid] = float(max(exact_match(prediction, g) for g in golds))
        f1[qid] = max(token_f1(prediction, g) for g in golds)
    out = {"exact_match": 100.0 * sum(em.values()) / len(em), "f1": 100.0 * sum(f1.values()) / len(f1)}
    if not all(has_answer.values()):
        for name, flag in (("has_answer", True), ("no_answer", False)):
            ids = [q for q, h in has_answer.items() if h == flag]
            if ids:
                out[f"{name}_exact_match"] = 100.0 * sum(em[q] for q in ids) / len(ids)
                out[f"{name}_f1"] = 100.0 * sum(f1[q] for q in ids) / len(ids)
                out[f"{name}_total"] = float(len(ids))
    return out
