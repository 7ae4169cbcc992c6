"""QA windows and answer recovery, LM blocks and perplexity, checked against direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from ppruning.measure.evaluate import score_split
from ppruning.tasks import get_task
from ppruning.tasks.data import load_task_dataset
from ppruning.tasks.prepare import prepare_split
from ppruning.tasks.qa_features import eval_features, postprocess, train_features
from ppruning.tasks.refs import TaskRef

CONTEXT = "the story is good . paris is the capital of france . they love it . the river is in the city ."


def _examples(answer: str | None) -> dict[str, list]:
    answers = (
        {"text": [answer], "answer_start": [CONTEXT.index(answer)]} if answer else {"text": [], "answer_start": []}
    )
    return {"id": ["q"], "question": ["what is the capital of france ?"], "context": [CONTEXT], "answers": [answers]}


def test_training_windows_point_at_the_answer_tokens_or_at_cls(tiny_bert_path):
    tok = AutoTokenizer.from_pretrained(tiny_bert_path)
    feats = train_features(tok, _examples("paris"), max_length=24, stride=6)
    # every window that contains the answer points at it; the others (and no-answer) at [CLS] = 0
    found = 0
    for ids, s, e in zip(feats["input_ids"], feats["start_positions"], feats["end_positions"], strict=True):
        if s == 0:
            assert e == 0
            continue
        assert tok.decode(ids[s : e + 1]) == "paris"
        found += 1
    assert found >= 1 and 0 in feats["start_positions"]  # strided windows: some hold the answer, some do not
    none = train_features(tok, _examples(None), max_length=24, stride=6)
    assert set(none["start_positions"]) == {0} and set(none["end_positions"]) == {0}


def _logits_pointing_at(feats: dict, answer_char: tuple[int, int] | None) -> tuple[list, list]:
    starts, ends = [], []
    for offsets in feats["offset_mapping"]:
        s, e = np.zeros(len(offsets)), np.zeros(len(offsets))
        if answer_char is None:
            s[0] = e[0] = 10.0  # [CLS]: no answer
        else:
            for k, o in enumerate(offsets):
                if o is not None and o[0] == answer_char[0]:
                    s[k] = 10.0
                if o is not None and o[1] == answer_char[1]:
                    e[k] = 10.0
        starts.append(s)
        ends.append(e)
    return starts, ends


def test_postprocessing_recovers_the_span_and_v2_prefers_no_answer_when_cls_wins(tiny_bert_path):
    tok = AutoTokenizer.from_pretrained(tiny_bert_path)
    examples = Dataset.from_dict(_examples("the capital of france"))
    feats = eval_features(tok, examples[:], max_length=24, stride=6)
    start = CONTEXT.index("the capital")
    s, e = _logits_pointing_at(feats, (start, start + len("the capital of france")))
    assert postprocess(examples, feats, s, e, version_2=False) == {"q": "the capital of france"}
    s, e = _logits_pointing_at(feats, None)
    assert postprocess(examples, feats, s, e, version_2=True) == {"q": ""}
    assert postprocess(examples, feats, s, e, version_2=False)["q"] != ""  # v1 always answers


def test_perplexity_is_exp_of_the_mean_token_nll_over_blocks(task_datasets, tiny_gpt2_path):
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_path).eval()
    info = get_task("wikitext-2")
    rows = load_task_dataset(TaskRef(name="wikitext-2"))["validation"]
    prepared = prepare_split(info, TaskRef(name="wikitext-2"), tok, rows, "validation", 32, train=False)
    got = score_split(model, tok, info, prepared, batch_size=3)
    # by hand: every block of 32 cut from the concatenated text, next-token NLL summed over all blocks
    ids = [i for t in rows["text"] for i in tok(t)["input_ids"]]
    blocks = torch.tensor([ids[i : i + 32] for i in range(0, len(ids) // 32 * 32, 32)])
    with torch.no_grad():
        logp = torch.log_softmax(model(blocks).logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, blocks[:, 1:, None]).squeeze(-1)
    assert got["tokens"] == nll.numel()
    assert got["perplexity"] == pytest.approx(math.exp(nll.mean().item()), rel=1e-4)
