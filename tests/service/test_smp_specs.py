"""Job specs for unstructured methods: a speed gate means nothing there and is refused at submission."""

from __future__ import annotations

import pytest

from jobs.specs import parse_spec


def _pipeline(method: str, accept: dict) -> dict:
    return {
        "kind": "pipeline",
        "model": {"id": "bert-base-uncased"},
        "task": {"name": "sst2"},
        "method": method,
        "target": {"params_reduction": 0.9},
        "accept": accept,
    }


def test_a_speed_gate_on_an_smp_pipeline_is_refused_naming_the_field() -> None:
    with pytest.raises(Exception, match="no dense speedup") as err:
        parse_spec(_pipeline("smp", {"min_speedup": 1.2}))
    assert getattr(err.value, "field", None) == "accept.min_speedup" or "accept.min_speedup" in str(err.value)
    spec = parse_spec(_pipeline("smp", {"max_metric_drop": 0.02}))
    assert spec.params["variant"] == "smp-s" and spec.params["head"] == "mlm"


def test_smp_params_are_validated_with_the_method_model() -> None:
    with pytest.raises(Exception, match="variant"):
        parse_spec({**_pipeline("smp", {"max_metric_drop": 0.02}), "params": {"variant": "smp-x"}})
