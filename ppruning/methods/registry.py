"""The registry of pruning methods: a leaf that knows no method.

Method modules register themselves with :func:`register_method`; the package
``ppruning.methods`` lists and imports them, so this module never imports the package
back. The API's method choices, ``GET /methods``, ``ppruning methods`` and the test
matrix all read this registry. A test may register a throw-away method and remove it
again with :func:`unregister_method`.
"""

from __future__ import annotations

from ppruning.errors import InvalidConfigError
from ppruning.methods.contract import MethodParams, MethodSpec

__all__ = [
    "MethodParams",
    "MethodSpec",
    "UnknownMethodError",
    "all_methods",
    "get_method",
    "register_method",
]

_METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in _METHODS:
        raise RuntimeError(f"method {spec.name!r} registered twice")
    _METHODS[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    _METHODS.pop(name, None)


class UnknownMethodError(InvalidConfigError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown method {name!r}; choose one of: {', '.join(sorted(_METHODS)) or '(none registered)'}",
            field="method",
        )


def get_method(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        raise UnknownMethodError(name) from None


def all_methods() -> dict[str, MethodSpec]:
    return dict(sorted(_METHODS.items()))
