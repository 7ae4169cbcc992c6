"""Errors of the job domain that a client can cause; the API maps each to one HTTP status."""

from __future__ import annotations


class InvalidSpec(ValueError):
    """A job spec fails a deployment check (allow-listed paths, the source job, stored text).

    ``field`` is the dotted path of the offending input (``model.id``, ``task.data_files.train``);
    the API answers 422 with it, the worker records it as the job's error.
    """

    type = "validation_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
