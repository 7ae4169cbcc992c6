"""Pruning methods; importing this package registers every built-in method.

Each method module calls ``register_method`` at import; list new modules below.
"""

from ppruning.methods import baselines, ppruning_method  # noqa: F401 - importing registers each method
from ppruning.methods.registry import MethodInfo, MethodParams, all_methods, get_method, register_method

__all__ = ["MethodInfo", "MethodParams", "all_methods", "get_method", "register_method"]
