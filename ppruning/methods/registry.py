"""The registry of pruning methods.

A method is one module under ``ppruning/methods/`` that calls :func:`register_method`
at import. The API's method choices, ``GET /methods``, ``ppruning methods`` and the
test matrix all read this registry, so adding a method is adding one module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ppruning.errors import InvalidConfigError


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    summary: str
    kind: Literal["structured", "unstructured"]
    #: 'none' (calibration-free), 'unlabeled' (task inputs), 'labeled' (inputs and labels)
    data: Literal["none", "unlabeled", "labeled"]
    params_model: type[MethodParams]
    #: ``config.model_type`` values the method supports; empty means every adapter's.
    model_types: frozenset[str] = field(default_factory=frozenset)
    #: ``compute_masks(context) -> Masks``; the context type lives in ppruning.pipeline.
    compute_masks: Callable[[Any], Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()


_METHODS: dict[str, MethodInfo] = {}


def register_method(info: MethodInfo) -> MethodInfo:
    if info.name in _METHODS:
        raise RuntimeError(f"method {info.name!r} registered twice")
    _METHODS[info.name] = info
    return info


class UnknownMethodError(InvalidConfigError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown method {name!r}; choose one of: {', '.join(sorted(_METHODS)) or '(none registered)'}",
            field="method",
        )


def _load_builtin() -> None:
    # Importing the package imports every method module, which registers itself.
    import ppruning.methods  # noqa: F401


def get_method(name: str) -> MethodInfo:
    _load_builtin()
    try:
        return _METHODS[name]
    except KeyError:
        raise UnknownMethodError(name) from None


def all_methods() -> dict[str, MethodInfo]:
    _load_builtin()
    return dict(sorted(_METHODS.items()))
