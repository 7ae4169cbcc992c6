"""Quality gates: a gated pipeline ends succeeded with a verdict; ``ppruning wait`` exits 4 on rejected."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from jobs.specs import AcceptCriteria
from ppruning.cli.main import main
from ppruning.tasks.registry import get_task
from ppruning_client.commands import EXIT_REJECTED
from tests.worker.conftest import FIXTURES, api_client, served_api
from tests.worker.harness import API_KEY, WorkerProcess, new_name, prune_spec
from worker.gates import decide

FINETUNE = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_train_samples": 24, "max_eval_samples": 8}
#: Gates need a measured speedup: the timing keeps to seconds_per_batch, not to a share of the short run.
MEASURE = {
    "batch_sizes": [2],
    "repeats": 2,
    "warmup": 0,
    "seconds_per_batch": 3.0,
    "target_rel_half_width": 1.0,
    "max_fraction": None,
}


def gated(model, accept: dict, **overrides) -> dict:
    spec = prune_spec(model, FIXTURES, kind="pipeline", finetune=FINETUNE, measure=MEASURE, accept=accept)
    spec["task"]["data_files"]["validation"] = str(FIXTURES / "reviews_validation.csv")
    spec.update(overrides)
    return spec


@pytest.fixture(scope="module")
def worker(service_backend) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(service_backend, new_name("gates"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.mark.service
@pytest.mark.slow
def test_a_gate_that_cannot_be_met_is_rejected_and_wait_exits_4_one_that_can_passes(
    service_backend, worker, tiny_model, tmp_path, capsys
):
    with served_api(service_backend) as url:
        auth = ["--url", url, "--api-key", API_KEY]
        ids = {}
        for name, accept in {
            # 100x faster is out of reach; the dense model is fine-tuned for the metric criterion
            "rejected": {"max_metric_drop": 1.0, "min_speedup": 100.0},
            # a given dense score: no dense fine-tuning; any accuracy is within 1.0 of 0.5. No speed
            # criterion: a busy machine makes a measurement noisy, and a noisy one never passes a gate
            # (the case above covers a speed criterion; tests of worker.gates.decide the noisy case).
            "passed": {"max_metric_drop": 1.0, "dense_score": 0.5},
        }.items():
            spec_file = tmp_path / f"{name}.json"
            spec = gated(tiny_model, accept) if name == "rejected" else gated(tiny_model, accept, measure=False)
            spec_file.write_text(json.dumps(spec))
            assert main(["submit", str(spec_file), "-q", *auth]) == 0
            ids[name] = capsys.readouterr().out.strip()

        waited = main(["wait", ids["rejected"], "--poll", "0.3", "--timeout", "150", "-q", "--json", *auth])
        assert waited == EXIT_REJECTED
        captured = capsys.readouterr()
        job = json.loads(captured.out)
        assert job["state"] == "succeeded" and job["result"]["verdict"] == "rejected"
        gate = job["result"]["gate"]
        assert gate["dense_score_source"] == "fine-tuned with the same settings" and gate["split"] == "validation"
        assert gate["metric_drop"] == pytest.approx(gate["dense_score"] - gate["pruned_score"])
        measured = job["result"]["report"]["speed"]["speedup"]  # None when a busy machine made it noisy
        assert gate["speedup"] == measured and (measured is None or measured < 100.0)
        assert len(gate["reasons"]) == 1 and "speedup" in gate["reasons"][0] and "rejected" in captured.err
        assert job["metrics"]["gate"]["passed"] == 0.0
        assert {"dense_metrics.json", "model.tar.gz", "report.json"} <= {a["name"] for a in job["artifacts"]}
        assert job["result"]["teacher"] is not None  # the dense fine-tune ran first and taught the pruned model

        assert main(["wait", ids["passed"], "--poll", "0.3", "--timeout", "120", "-q", "--json", *auth]) == 0
        job = json.loads(capsys.readouterr().out)
        gate = job["result"]["gate"]
        assert job["result"]["verdict"] == "passed" and gate["reasons"] == []
        assert gate["dense_score"] == 0.5 and gate["dense_score_source"] == "given"
        assert gate["metric_drop"] == pytest.approx(0.5 - job["metrics"]["validation"]["accuracy"])
        assert "dense_metrics.json" not in {a["name"] for a in job["artifacts"]}
        assert job["result"]["teacher"] is None
        assert job["metrics"]["gate"]["passed"] == 1.0


def test_lower_is_better_metrics_drop_by_rising():
    perplexity = get_task("wikitext-2")
    assert perplexity.greater_is_better is False
    accept = AcceptCriteria(max_metric_drop=2.0)
    gate = decide(accept, perplexity, {"validation": {"perplexity": 25.0}}, {"validation": {"perplexity": 20.0}}, {})
    assert gate["metric_drop"] == 5.0 and gate["verdict"] == "rejected"
    gate = decide(accept, perplexity, {"validation": {"perplexity": 19.0}}, {"validation": {"perplexity": 20.0}}, {})
    assert gate["metric_drop"] == -1.0 and gate["verdict"] == "passed"


def test_gate_and_callback_fields_are_validated_at_submission(service_backend, tiny_model):
    with api_client(service_backend) as client:
        http = client.http
        cases = {
            "accept": (gated(tiny_model, {}), "accept"),
            "accept.min_speedup": (gated(tiny_model, {"min_speedup": 1.2}, measure=False), "accept.min_speedup"),
            "callback_url": (gated(tiny_model, {"min_speedup": 1.2}, callback_url="ftp://ci/hook"), "callback_url"),
        }
        for label, (spec, field) in cases.items():
            response = http.post("/jobs", json=spec)
            assert response.status_code == 422, (label, response.text)
            assert (response.json()["error"]["field"] or "").startswith(field), (label, response.json())
        ok = prune_spec(tiny_model, FIXTURES, callback_url="https://ci.example.com/hook?job=1")
        job = client.submit(ok)
        assert job["spec"]["callback_url"] == "https://ci.example.com/hook?job=1"
        client.cancel(job["id"])


def test_a_noisy_or_missing_speed_measurement_never_passes_a_speed_gate():
    accept = AcceptCriteria(min_speedup=0.01)
    task = get_task("sst2")
    noisy = decide(accept, task, {}, {}, {"measured": True, "noisy": True, "speedup": None})
    assert noisy["verdict"] == "rejected" and "noisy" in noisy["reasons"][0]
    missing = decide(accept, task, {}, {}, {"measured": False, "speedup": None})
    assert missing["verdict"] == "rejected" and missing["reasons"] == ["the speedup was not measured"]
    measured = decide(accept, task, {}, {}, {"measured": True, "noisy": False, "speedup": 1.3})
    assert measured["verdict"] == "passed" and measured["reasons"] == []
