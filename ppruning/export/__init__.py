"""Exporting a (pruned) checkpoint for serving: ONNX with parity and latency checks (:mod:`ppruning.export.onnx`)."""
