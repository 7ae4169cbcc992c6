"""P-pruning: structured pruning of transformer models before fine-tuning.

The library knows nothing of the service: it turns a model, task data and a budget into
masks, a physically smaller checkpoint and a report. Heavy imports (torch,
transformers) happen on first use, so ``import ppruning`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):  # PEP 562: heavy imports only when the name is used
    if name == "load_pruned":
        from ppruning.checkpoint import load_pruned

        return load_pruned
    raise AttributeError(f"module 'ppruning' has no attribute {name!r}")
