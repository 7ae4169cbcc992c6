"""SQuAD v1.1 and v2.0 (``rajpurkar/squad``, ``rajpurkar/squad_v2``): extractive question answering.

Contexts longer than the max length are split into overlapping windows (doc stride);
answers are recovered from start/end logits by :mod:`ppruning.tasks.qa_features` and
scored by :mod:`ppruning.tasks.squad_scoring` (the official normalisation; v2 adds
unanswerable questions). SQuAD has no public test set: the reported split is
validation and checkpoints are selected on a held-out slice of train.
"""

from __future__ import annotations

from ppruning.tasks.registry import TaskInfo, register_task

_PAPER = {"learning_rate": 3e-5, "batch_size": 32, "epochs": 2, "seed": 3407, "max_length": 384, "doc_stride": 128}

for _name, _dataset, _v2 in (("squad", "rajpurkar/squad", False), ("squad_v2", "rajpurkar/squad_v2", True)):
    register_task(
        TaskInfo(
            name=_name,
            kind="question-answering",
            summary=(
                "SQuAD v2.0: extractive QA with unanswerable questions (EM/F1, no-answer aware)."
                if _v2
                else "SQuAD v1.1: extractive question answering over Wikipedia paragraphs (EM/F1)."
            ),
            dataset=_dataset,
            text_columns=("question", "context"),
            label_column="answers",
            max_length=384,
            metrics=("exact_match", "f1"),
            main_metric="f1",
            paper_hparams=_PAPER,
            head="question-answering",
            extra={"doc_stride": 128, "version_2_with_negative": _v2, "n_best": 20, "max_answer_length": 30},
        )
    )
