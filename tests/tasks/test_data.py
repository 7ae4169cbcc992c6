"""Task data: hub tasks through the offline override, custom files, label encoding, pruning inputs."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from ppruning.errors import DataError, InvalidConfigError, UnknownTaskError
from ppruning.tasks import all_tasks, validate_task_ref
from ppruning.tasks.data import load_task_dataset, tokenized_inputs
from ppruning.tasks.refs import TaskRef
from tests.conftest import FIXTURES

CUSTOM = FIXTURES / "custom"
PAPER_TASKS = {
    "cola",
    "sst2",
    "mrpc",
    "stsb",
    "qqp",
    "mnli",
    "qnli",
    "rte",
    "squad",
    "squad_v2",
    "wikitext-2",
    "wikitext-103",
    "ptb",
}


def reviews(**kw) -> TaskRef:
    files = {s: str(CUSTOM / f"reviews_{s}.csv") for s in ("train", "validation")}
    return TaskRef(name="text-classification", data_files=files, text_column="review", label_column="sentiment", **kw)


def test_every_paper_task_and_the_custom_tasks_are_registered_with_an_offline_fixture():
    tasks = all_tasks()
    assert PAPER_TASKS | {"text-classification", "text-pair-classification", "text-regression", "causal-lm"} <= set(
        tasks
    )
    for name in PAPER_TASKS:
        assert (FIXTURES / "datasets" / name / "train.jsonl").is_file(), name
        assert tasks[name].dataset and tasks[name].paper_hparams


def test_hub_tasks_load_their_override_with_the_hub_columns_and_labels(task_datasets):
    dsd = load_task_dataset(TaskRef(name="mrpc"))
    assert {"train", "validation", "test"} <= set(dsd)
    assert {"sentence1", "sentence2", "label", "idx"} <= set(dsd["train"].column_names)
    assert dsd["train"].features["label"].names == ["not_equivalent", "equivalent"]
    assert set(dsd["test"]["label"]) == {-1}
    mnli = load_task_dataset(TaskRef(name="mnli"))
    assert {"validation_matched", "validation_mismatched"} <= set(mnli)


def test_without_the_override_a_hub_task_calls_load_dataset_with_the_hub_name(monkeypatch):
    monkeypatch.delenv("PPRUNING_DATASETS_DIR", raising=False)
    with pytest.raises(DataError, match="nyu-mll/glue") as err:
        load_task_dataset(TaskRef(name="sst2"))  # offline in tests: the real call fails, and says so
    assert "PPRUNING_DATASETS_DIR" in err.value.message


def test_custom_string_labels_map_to_sorted_ids_shared_by_every_split():
    import csv

    dsd = load_task_dataset(reviews())
    assert dsd["train"].features["sentiment"].names == ["neg", "pos"]
    with (CUSTOM / "reviews_validation.csv").open() as f:
        raw = [row["sentiment"] for row in csv.DictReader(f)]
    assert dsd["validation"]["sentiment"] == [{"neg": 0, "pos": 1}[y] for y in raw]


def test_a_missing_custom_column_names_the_column_and_the_option():
    with pytest.raises(DataError, match="no column 'txt'") as err:
        load_task_dataset(reviews().model_copy(update={"text_column": "txt"}))
    assert err.value.field == "task.text_column"


def test_a_missing_file_and_a_missing_split_are_data_errors(tmp_path, tiny_bert_path):
    ref = TaskRef(name="text-classification", data_files={"train": str(tmp_path / "nope.csv")})
    with pytest.raises(DataError, match="no such file"):
        load_task_dataset(ref)
    with pytest.raises(DataError, match="no split 'test'"):
        tokenized_inputs(
            reviews(), AutoTokenizer.from_pretrained(tiny_bert_path), split="test", max_instances=4, seed=0
        )


def test_task_refs_are_checked_at_submission_without_reading_data():
    with pytest.raises(UnknownTaskError):
        validate_task_ref(TaskRef(name="imdb"))
    with pytest.raises(InvalidConfigError) as err:
        validate_task_ref(TaskRef(name="text-classification"))
    assert err.value.field == "task.data_files"
    with pytest.raises(InvalidConfigError) as err:
        validate_task_ref(TaskRef(name="sst2", text_column="x"))
    assert err.value.field == "task.text_column"
    with pytest.raises(InvalidConfigError, match="text_pair_column"):
        validate_task_ref(TaskRef(name="text-pair-classification", data_files={"train": "a.csv"}))
    with pytest.raises(InvalidConfigError, match="'train'"):
        validate_task_ref(TaskRef(name="text-classification", data_files={"validation": "a.csv"}))


def test_pruning_inputs_are_a_seeded_unlabelled_selection_tokenised_as_pairs(task_datasets, tiny_bert_path):
    tok = AutoTokenizer.from_pretrained(tiny_bert_path)
    a = tokenized_inputs(TaskRef(name="mrpc"), tok, max_instances=10, seed=1, max_length=24)
    b = tokenized_inputs(TaskRef(name="mrpc"), tok, max_instances=10, seed=1, max_length=24)
    c = tokenized_inputs(TaskRef(name="mrpc"), tok, max_instances=10, seed=2, max_length=24)
    assert set(a.column_names) == {"input_ids", "attention_mask", "token_type_ids"}
    assert len(a) == 10 and a["input_ids"] == b["input_ids"] and a["input_ids"] != c["input_ids"]
    assert max(len(x) for x in a["input_ids"]) <= 24
    assert all(1 in t for t in a["token_type_ids"])  # the second sentence is segment 1: encoded as a pair


def test_pruning_inputs_for_qa_and_lm(task_datasets, tiny_bert_path, tiny_gpt2_path):
    bert = AutoTokenizer.from_pretrained(tiny_bert_path)
    qa = tokenized_inputs(TaskRef(name="squad_v2"), bert, max_instances=5, seed=0, max_length=20)
    assert len(qa) == 5 and max(len(x) for x in qa["input_ids"]) == 20  # context truncated, question kept
    gpt = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    lm = tokenized_inputs(TaskRef(name="wikitext-2"), gpt, max_instances=3, seed=0)
    # 512 is the task's block size, capped at the tiny model's 128 positions (read from its config)
    assert len(lm) == 3 and {len(x) for x in lm["input_ids"]} == {128}
    assert "labels" not in lm.column_names


def test_lm_pruning_inputs_from_a_large_corpus_are_blocks_fine_tuning_also_sees(tmp_path, tiny_gpt2_path):
    from ppruning.tasks import get_task
    from ppruning.tasks.features import lm_blocks

    lines = [f"the movie {i} was very good and the story was fun" for i in range(3500)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    ref = TaskRef(name="causal-lm", data_files={"train": str(tmp_path / "train.txt")})
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_path)
    sample = tokenized_inputs(ref, tok, max_instances=5, seed=0, max_length=16)
    assert (
        len(sample) == 5
        and sample["input_ids"] == tokenized_inputs(ref, tok, max_instances=5, seed=0, max_length=16)["input_ids"]
    )
    everything = lm_blocks(load_task_dataset(ref)["train"], tok, "text", 16)
    assert {tuple(x) for x in sample["input_ids"]} <= {tuple(x) for x in everything["input_ids"]}
    assert get_task("causal-lm").kind == "causal-lm"
