"""The budget's length in a job spec: the sampling block's cost_length, checked at submission by name."""

from __future__ import annotations


def test_a_prune_spec_takes_a_cost_length_and_a_bad_one_is_refused_naming_it(client, auth, prune_spec) -> None:
    r = client.post("/jobs", json={**prune_spec, "sampling": {"cost_length": "mean"}}, headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["sampling"]["cost_length"] == "mean"

    r = client.post("/jobs", json={**prune_spec, "sampling": {"cost_length": "average"}}, headers=auth)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"].startswith("sampling.cost_length") and "'max', 'mean' or a number" in error["message"]
