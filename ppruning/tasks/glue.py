"""The eight GLUE tasks the paper evaluates, as published on the hub (``nyu-mll/glue``).

GLUE's test labels are hidden (-1), so the reported split is validation (MNLI: both
matched and mismatched) and checkpoints are selected on a held-out slice of train.
Reference hyperparameters: docs/algorithms.md, P-pruning, step 8 (BERT: lr {5e-5, 3e-5, 2e-5},
batch {16, 32}, epochs {2, 3, 4}, seed 3407; max length 128, SST-2 64). The ``paper``
preset takes the first of each grid.
"""

from __future__ import annotations

from ppruning.tasks.registry import TaskInfo, register_task

GLUE_DATASET = "nyu-mll/glue"

_PAPER = {"learning_rate": 2e-5, "batch_size": 32, "epochs": 3, "seed": 3407}
_PAPER_GRID = {"learning_rate": [5e-5, 3e-5, 2e-5], "batch_size": [16, 32], "epochs": [2, 3, 4]}


def _glue(
    name: str,
    summary: str,
    text_columns: tuple[str, ...],
    label_names: tuple[str, ...],
    metrics: tuple[str, ...] = ("accuracy",),
    main_metric: str = "accuracy",
    eval_splits: tuple[str, ...] = ("validation",),
    max_length: int = 128,
) -> TaskInfo:
    regression = not label_names
    return register_task(
        TaskInfo(
            name=name,
            kind="regression" if regression else "classification",
            summary=summary,
            dataset=GLUE_DATASET,
            dataset_config=name,
            text_columns=text_columns,
            label_column="label",
            num_labels=1 if regression else len(label_names),
            eval_splits=eval_splits,
            max_length=max_length,
            metrics=metrics,
            main_metric=main_metric,
            paper_hparams={**_PAPER, "max_length": max_length, "grid": _PAPER_GRID},
            head="sequence-classification",
            label_names=label_names,
            extra={"benchmark": "glue"},
        )
    )


_glue(
    "cola",
    "CoLA: grammatical acceptability (Matthews correlation).",
    ("sentence",),
    ("unacceptable", "acceptable"),
    ("matthews_correlation", "accuracy"),
    "matthews_correlation",
)
_glue(
    "sst2", "SST-2: binary sentiment of movie-review sentences.", ("sentence",), ("negative", "positive"), max_length=64
)
_glue(
    "mrpc",
    "MRPC: are two sentences paraphrases (accuracy and F1).",
    ("sentence1", "sentence2"),
    ("not_equivalent", "equivalent"),
    ("accuracy", "f1"),
)
_glue(
    "stsb",
    "STS-B: sentence-pair similarity 0-5, regression (Pearson, Spearman, their mean).",
    ("sentence1", "sentence2"),
    (),
    ("pearson", "spearman", "pearson_spearman_mean"),
    "pearson_spearman_mean",
)
_glue(
    "qqp",
    "QQP: are two Quora questions duplicates (accuracy and F1).",
    ("question1", "question2"),
    ("not_duplicate", "duplicate"),
    ("accuracy", "f1"),
)
_glue(
    "mnli",
    "MNLI: entailment / neutral / contradiction; matched and mismatched dev sets.",
    ("premise", "hypothesis"),
    ("entailment", "neutral", "contradiction"),
    eval_splits=("validation_matched", "validation_mismatched"),
)
_glue(
    "qnli", "QNLI: does the sentence answer the question.", ("question", "sentence"), ("entailment", "not_entailment")
)
_glue("rte", "RTE: textual entailment.", ("sentence1", "sentence2"), ("entailment", "not_entailment"))
