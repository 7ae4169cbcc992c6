"""Exporting a (pruned) checkpoint for serving: ONNX with parity and latency checks (:mod:`ppruning.export.onnx`).

This package root imports neither torch nor the exporter, so a caller can ask whether
the ``export`` extra is installed (:func:`missing_export_modules`) before it commits to
an export.
"""

from __future__ import annotations

from importlib.util import find_spec

#: Modules the ONNX export needs: torch's exporter (onnx, onnxscript) and the parity check and timing.
EXPORT_MODULES = ("onnx", "onnxscript", "onnxruntime")
EXPORT_INSTALL = "pip install 'ppruning-service[export]'"


def missing_export_modules() -> list[str]:
    """The modules of the ``export`` extra this environment lacks (empty: exports can run here)."""
    return [name for name in EXPORT_MODULES if find_spec(name) is None]
