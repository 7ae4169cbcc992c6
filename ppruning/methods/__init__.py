"""Pruning methods: the contract, the registry and the built-in methods, listed explicitly.

A new method is one package here, named as it is registered, that holds all of the
method's code and registers a :class:`MethodSpec`; add its import below. Nothing else in
the library, the CLI or the service names a method.
"""

from ppruning.methods import baselines, ppruning, prunenet, smp  # noqa: F401 - each package registers its methods
from ppruning.methods.contract import DataNeed, MethodContext, MethodParams, MethodSpec
from ppruning.methods.registry import (
    UnknownMethodError,
    all_methods,
    get_method,
    register_method,
    unregister_method,
)

__all__ = [
    "DataNeed",
    "MethodContext",
    "MethodParams",
    "MethodSpec",
    "UnknownMethodError",
    "all_methods",
    "get_method",
    "register_method",
    "unregister_method",
]
