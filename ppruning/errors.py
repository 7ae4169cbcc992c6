"""Errors a user can meet, each naming the input at fault and, where there is one, the fix.

The service maps these to 4xx responses (at submission) or to a failed job's
``error_type`` and message (in the worker) in one place each; nothing else should
need to know their text.
"""

from __future__ import annotations


class PruningError(Exception):
    """Base of every error the library raises on purpose."""

    #: The input field at fault, dotted (``"target.flops_reduction"``), when one is.
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class InvalidConfigError(PruningError):
    """A parameter is out of range or inconsistent with another."""


class InfeasibleTargetError(InvalidConfigError):
    """The target removes more than keeping one head and one neuron per layer allows."""

    def __init__(self, message: str, *, largest_feasible: float, field: str | None = "target") -> None:
        super().__init__(message, field=field)
        self.largest_feasible = largest_feasible


class UnsupportedModelError(PruningError):
    """No architecture adapter knows this ``config.model_type``, or the method does not support it."""


class ModelLoadError(PruningError):
    """The model or tokenizer could not be loaded (bad id, gated repo, missing files)."""


class UnknownTaskError(PruningError):
    """The task name is not registered."""


class DataError(PruningError):
    """The task's data could not be loaded or lacks a column the task needs."""


class MaskShapeError(PruningError):
    """Masks read from files do not match the model's layers, heads or FFN width."""


class JobCancelled(Exception):  # noqa: N818 - a signal, not a failure
    """Raised at a checkpoint when the caller asked to stop; not a PruningError."""
