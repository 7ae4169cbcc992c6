"""A prune job that asks for an ONNX export: the worker exports the pruned model and uploads it with its sha256."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.worker.conftest import FIXTURES, api_client
from tests.worker.harness import prune_spec

pytestmark = [
    pytest.mark.service,
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
        reason="the export extra (onnx, onnxscript, onnxruntime) is not installed",
    ),
]

EXPORT_ARTIFACTS = {"model.onnx", "model.int8.onnx", "export_report.json", "README.onnx.md"}


def test_prune_job_with_export_uploads_the_onnx_model_and_its_report(service_backend, spawn, tiny_model, tmp_path):
    import numpy as np
    import onnxruntime as ort

    spawn(service_backend)
    with api_client(service_backend) as client:
        job = client.submit(prune_spec(tiny_model, FIXTURES, export=["onnx"], quantize="int8"))
        done = client.wait(job["id"], timeout_s=240, poll_s=0.3)
        assert done["state"] == "succeeded", done.get("error")
        artifacts = {a["name"]: a for a in done["artifacts"]}
        assert EXPORT_ARTIFACTS <= set(artifacts) and "model.tar.gz" in artifacts
        assert all(len(artifacts[name]["sha256"]) == 64 for name in EXPORT_ARTIFACTS)
        export = done["metrics"]["export"]
        assert export["pruned_max_abs_diff"] < 1e-3 and export["pruned_latency_ms"] > 0
        assert "int8_latency_ms" in export and "speedup" in export  # the dense source is the tiny model
        assert done["result"]["export"]["pruned"]["max_abs_diff"] == export["pruned_max_abs_diff"]

        for name in ("model.onnx", "export_report.json"):
            client.download(job["id"], name, tmp_path / name)  # checks the sha256 the service sends
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["int8"]["max_abs_diff"] < 1.0
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 2023, 3185, 2001, 2307, 102]], dtype=np.int64) % 100
    (out,) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert out.shape[0] == 1 and np.isfinite(out).all()
