"""Causal language modelling: WikiText-2, WikiText-103 and the Penn Treebank; perplexity.

Text is tokenised line by line, concatenated and cut into blocks of the block size
(512, or the model's context when shorter), as the transformers ``run_clm`` example
does, so perplexities compare with everyone's. Validation and test both have labels:
checkpoints are selected on validation, both are reported.
"""

from __future__ import annotations

from ppruning.tasks.registry import TaskInfo, register_task


def _lm(name: str, summary: str, dataset: str, config: str, column: str, hparams: dict) -> TaskInfo:
    return register_task(
        TaskInfo(
            name=name,
            kind="causal-lm",
            summary=summary,
            dataset=dataset,
            dataset_config=config,
            text_columns=(column,),
            eval_splits=("validation", "test"),
            max_length=512,
            metrics=("perplexity", "loss"),
            main_metric="perplexity",
            greater_is_better=False,
            paper_hparams={**hparams, "seed": 3407, "max_length": 512},
            head="causal-lm",
            selection_split="validation",
        )
    )


_lm(
    "wikitext-2",
    "WikiText-2 (wikitext-2-v1): Wikipedia articles, ~2M tokens; perplexity.",
    "Salesforce/wikitext",
    "wikitext-2-v1",
    "text",
    {"learning_rate": 5e-4, "batch_size": 32, "epochs": 8},
)
_lm(
    "wikitext-103",
    "WikiText-103 (wikitext-103-v1): Wikipedia articles, ~103M tokens; perplexity.",
    "Salesforce/wikitext",
    "wikitext-103-v1",
    "text",
    {"learning_rate": 1e-4, "batch_size": 32, "epochs": 10},
)
_lm(
    "ptb",
    "Penn Treebank (ptb_text_only): WSJ sentences, ~1M words; perplexity.",
    "ptb-text-only/ptb_text_only",
    "penn_treebank",
    "sentence",
    {"learning_rate": 1e-4, "batch_size": 32, "epochs": 10},
)
