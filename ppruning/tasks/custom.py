"""Custom tasks from local files: the user names the files and the columns.

``data_files`` maps split names (train, validation, test) to CSV, TSV, JSON/JSONL or
plain-text files. Labels may be strings or integers; :mod:`ppruning.tasks.data` maps
them to ids once, from the train split, so every split agrees.
"""

from __future__ import annotations

from ppruning.tasks.registry import TaskInfo, register_task

_CLASSIFIER_HPARAMS = {"learning_rate": 2e-5, "batch_size": 32, "epochs": 3, "seed": 3407, "max_length": 128}

register_task(
    TaskInfo(
        name="text-classification",
        kind="classification",
        summary="Your labelled texts (CSV/JSON): one text column and a label column (strings or integers).",
        custom=True,
        text_columns=("text",),
        label_column="label",
        eval_splits=("validation", "test"),
        metrics=("accuracy", "f1"),
        main_metric="accuracy",
        paper_hparams=_CLASSIFIER_HPARAMS,
        required_fields=("data_files",),
        optional_fields=("text_column", "label_column"),
    )
)

register_task(
    TaskInfo(
        name="text-pair-classification",
        kind="classification",
        summary="Your labelled text pairs (CSV/JSON): two text columns and a label column.",
        custom=True,
        text_columns=("text", "text_pair"),
        label_column="label",
        eval_splits=("validation", "test"),
        metrics=("accuracy", "f1"),
        main_metric="accuracy",
        paper_hparams=_CLASSIFIER_HPARAMS,
        required_fields=("data_files", "text_pair_column"),
        optional_fields=("text_column", "label_column"),
    )
)

register_task(
    TaskInfo(
        name="text-regression",
        kind="regression",
        summary="Your texts (or pairs) with a real-valued label (CSV/JSON); Pearson and Spearman.",
        custom=True,
        text_columns=("text",),
        label_column="label",
        num_labels=1,
        eval_splits=("validation", "test"),
        metrics=("pearson", "spearman", "pearson_spearman_mean", "mse"),
        main_metric="pearson_spearman_mean",
        paper_hparams=_CLASSIFIER_HPARAMS,
        required_fields=("data_files",),
        optional_fields=("text_column", "text_pair_column", "label_column"),
    )
)

register_task(
    TaskInfo(
        name="causal-lm",
        kind="causal-lm",
        summary="Your plain text (one document or line per row; .txt, or CSV/JSON with a text column); perplexity.",
        custom=True,
        text_columns=("text",),
        eval_splits=("validation", "test"),
        max_length=512,
        metrics=("perplexity", "loss"),
        main_metric="perplexity",
        greater_is_better=False,
        paper_hparams={"learning_rate": 1e-4, "batch_size": 32, "epochs": 10, "seed": 3407, "max_length": 512},
        head="causal-lm",
        required_fields=("data_files",),
        optional_fields=("text_column",),
        selection_split="validation",
    )
)
