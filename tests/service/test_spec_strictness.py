"""What a client sends in a job spec is read as the schema says: a deep body is malformed JSON, a
number is a JSON number, a message repeats the value given, and a local data file's columns are
checked when the job is submitted."""

from __future__ import annotations

import json

import pytest

from tests.service.conftest import count_jobs


def _error(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] and error["message"]
    return error


def test_a_deeply_nested_body_is_malformed_json(client, auth, dispatcher, pg_url, owner):
    body = b"[" * 20_000 + b"]" * 20_000
    r = client.post("/jobs", content=body, headers={**auth, "Content-Type": "application/json"})
    assert _error(r, 400)["type"] == "malformed_json"
    assert count_jobs(pg_url, owner) == 0 and dispatcher.sent == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("target", "flops_reduction"), "0.3", "target.flops_reduction"),
        (("seed",), "7", "seed"),
        (("params", "lambda_val"), "1", "params.lambda_val"),
    ],
)
def test_a_number_sent_as_a_string_is_422(client, auth, prune_spec, dispatcher, pg_url, owner, path, value, field):
    spec = json.loads(json.dumps(prune_spec))
    node = spec
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    error = _error(client.post("/jobs", json=spec, headers=auth), 422)
    assert error["field"] == field, error
    assert count_jobs(pg_url, owner) == 0 and dispatcher.sent == []


def test_integers_still_count_as_numbers(client, auth, prune_spec):
    spec = {**prune_spec, "params": {"lambda_val": 1}, "seed": 11}
    assert client.post("/jobs", json=spec, headers=auth).status_code == 202


def test_an_infeasible_target_is_reported_with_the_value_given(client, auth, prune_spec):
    spec = {**prune_spec, "target": {"flops_reduction": 0.9999999}}
    error = _error(client.post("/jobs", json=spec, headers=auth), 422)
    assert error["type"] == "infeasible_target" and "flops_reduction=0.9999999 " in error["message"], error


@pytest.mark.parametrize(
    ("columns", "field"),
    [
        ({"text_column": "review"}, "task.text_column"),
        ({"label_column": "sentiment"}, "task.label_column"),
    ],
)
def test_a_column_missing_from_a_local_data_file_is_422_at_submission(
    client, auth, prune_spec, model_root, dispatcher, pg_url, owner, columns, field
):
    task = {"name": "text-classification", "data_files": {"train": str(model_root / "data" / "train.csv")}}
    spec = {**prune_spec, "task": {**task, "text_column": "sentence", **columns}}
    error = _error(client.post("/jobs", json=spec, headers=auth), 422)
    assert error["field"] == field and "sentence, label" in error["message"], error
    assert count_jobs(pg_url, owner) == 0 and dispatcher.sent == []
    ok = {**prune_spec, "target": {"flops_reduction": 0.2}, "task": {**task, "text_column": "sentence"}}
    assert client.post("/jobs", json=ok, headers=auth).status_code == 202


def test_a_job_asking_for_mlflow_tracking_on_a_service_without_a_tracking_server_is_422(client, auth, prune_spec):
    r = client.post("/jobs", json={**prune_spec, "tracking": {"mlflow": True}}, headers=auth)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "tracking.mlflow" and "PPRUNING_MLFLOW_TRACKING_URI" in error["message"], error
    r = client.post("/jobs", json={**prune_spec, "tracking": {"mlflow": False}}, headers=auth)
    assert r.status_code == 202, r.text
    r = client.post("/jobs", json={**prune_spec, "tracking": {"mlflw": True}}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("tracking"), r.text
