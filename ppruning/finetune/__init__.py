"""Fine-tuning a pruned model on its task (P-pruning's second stage); see :mod:`ppruning.finetune.run`."""

from ppruning.finetune.run import FinetuneResult, finetune

__all__ = ["FinetuneResult", "finetune"]
