"""``export`` in a job spec: validated with the spec, refused at submission when the export extra is missing."""

from __future__ import annotations

import pytest

from jobs import spec_checks
from jobs.kinds import parse_spec
from ppruning import InvalidConfigError

pytestmark = pytest.mark.service


def test_export_and_quantize_stay_out_of_the_library_config(prune_spec):
    spec = parse_spec({**prune_spec, "export": ["onnx"], "quantize": "int8"})
    assert spec.export == ["onnx"] and spec.quantize == "int8"
    assert "export" not in spec.prune_config().model_dump()
    assert parse_spec(prune_spec).export == []


def test_quantize_without_an_export_is_refused_naming_quantize(prune_spec):
    with pytest.raises(InvalidConfigError) as exc:
        parse_spec({**prune_spec, "kind": "pipeline", "quantize": "int8"})
    assert exc.value.field == "quantize"


def test_an_unknown_export_format_is_422_naming_export(client, auth, prune_spec):
    r = client.post("/jobs", json={**prune_spec, "export": ["tflite"]}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("export"), r.text


def test_export_is_refused_when_the_export_extra_is_missing(client, auth, prune_spec, dispatcher, monkeypatch):
    monkeypatch.setattr(spec_checks, "missing_export_modules", lambda: ["onnxruntime"])
    r = client.post("/jobs", json={**prune_spec, "export": ["onnx"]}, headers=auth)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "export" and "pip install 'ppruning-service[export]'" in error["message"]
    assert dispatcher.sent == []
    assert client.post("/jobs", json=prune_spec, headers=auth).status_code == 202  # no export: accepted
