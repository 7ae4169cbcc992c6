"""Job specs for unstructured and mask-learning methods: a speed gate means nothing there and is refused at
submission; a teacher is named in 'distill', checked like any model or source job, and only for a method
that learns from one."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from jobs.kinds import parse_spec
from jobs.store import repository
from jobs.store.session import session_scope
from jobs.store.states import JobState


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


# --------------------------------------------------------------------------- a teacher for the method


def _smp(model_root: Path, kind: str = "prune", **fields: Any) -> dict:
    """SMP with a new head (the allowed tiny BERT has no MLM head); ``fields`` added to the spec."""
    spec = {"kind": kind, "model": {"id": str(model_root / "bert")}, "task": {"name": "sst2"}, "method": "smp",
            "target": {"params_reduction": 0.5}, "params": {"head": "new", "steps": 10}, **fields}  # fmt: skip
    if kind == "pipeline":
        spec["finetune"] = {"epochs": 1}
    return spec


def _finished_finetune(pg_url: str, owner: str, state: JobState = JobState.SUCCEEDED) -> str:
    with session_scope(pg_url) as session:
        job, _ = repository.create_job(session, owner=owner, kind="finetune", spec={"kind": "finetune"})
        for step in (JobState.RUNNING, state):
            repository.transition(session, job, step)
        return str(job.id)


@pytest.mark.parametrize("kind", ["prune", "pipeline"])
def test_an_smp_job_takes_a_teacher_model_or_a_finished_fine_tune(client, auth, model_root, pg_url, owner, kind):
    teacher = {"teacher": {"id": str(model_root / "escape" / ".." / "bert")}, "temperature": 4.0}
    r = client.post("/jobs", json=_smp(model_root, kind, distill=teacher), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "distill.teacher.id"  # no '..' in a path

    r = client.post("/jobs", json=_smp(model_root, kind, distill={"teacher": {"id": str(model_root / "bert")}}),
                    headers=auth)  # fmt: skip
    assert r.status_code == 202, r.text
    stored = r.json()["spec"]
    assert stored["distill"]["teacher"]["id"] == str((model_root / "bert").resolve())
    assert stored["params"]["distill"] is None  # the worker fills it in from 'distill'

    job = _finished_finetune(pg_url, owner)
    r = client.post("/jobs", json=_smp(model_root, kind, distill={"from_job": job, "alpha": 0.7}), headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["distill"]["from_job"] == job and r.json()["spec"]["distill"]["alpha"] == 0.7


def test_a_teacher_job_that_is_unknown_or_unfinished_is_refused_naming_the_field(client, auth, model_root, pg_url,
                                                                                  owner):  # fmt: skip
    unknown = {"from_job": str(uuid.uuid4())}
    r = client.post("/jobs", json=_smp(model_root, distill=unknown), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "distill.from_job"
    assert "not found" in r.json()["error"]["message"]

    failed = _finished_finetune(pg_url, owner, JobState.FAILED)
    r = client.post("/jobs", json=_smp(model_root, "pipeline", distill={"from_job": failed}), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "distill.from_job"
    assert "failed" in r.json()["error"]["message"] and "succeeded" in r.json()["error"]["message"]


def test_a_teacher_for_a_method_that_cannot_learn_from_one_is_refused_naming_the_field(client, auth, prune_spec):
    r = client.post("/jobs", json={**prune_spec, "distill": {"teacher": {"id": "org/teacher"}}}, headers=auth)
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == "distill", r.text
    assert "'ppruning' does not learn from a teacher" in error["message"] and "smp" in error["message"]


def test_a_teacher_under_params_is_refused_pointing_to_distill(client, auth, model_root):
    spec = _smp(model_root)
    spec["params"]["distill"] = {"teacher": {"id": "/etc"}}  # would reach the library unchecked
    r = client.post("/jobs", json=spec, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "params.distill"
    assert "'distill'" in r.json()["error"]["message"]
    both = _smp(model_root, distill={"teacher": {"id": "org/teacher"}})
    both["params"]["distill"] = {"teacher": {"id": "org/other"}}
    r = client.post("/jobs", json=both, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "params.distill"


def test_the_teacher_reaches_the_library_as_params_distill() -> None:
    spec = parse_spec({**_pipeline("smp", {"max_metric_drop": 0.02}), "distill": {"teacher": {"id": "org/t"}}})
    assert spec.prune_config().params["distill"]["teacher"]["id"] == "org/t"
    from_job = parse_spec({**_pipeline("smp", {"max_metric_drop": 0.02}), "distill": {"from_job": str(uuid.uuid4())}})
    assert from_job.prune_config().params["distill"] is None  # a folder only once the worker has downloaded it
    resolved = from_job.prune_config(distill=from_job.distill.distill_config("/work/teacher"))
    assert resolved.params["distill"]["teacher"]["id"] == "/work/teacher"


# --------------------------------------------------------------------------- sweeps


def _sweep(model_root: Path, method: str, targets: dict, **fields: Any) -> dict:
    spec = {"kind": "sweep", "model": {"id": str(model_root / "bert")}, "task": {"name": "sst2"}, "method": method,
            "targets": targets, **fields}  # fmt: skip
    if method != "ppruning":
        spec["params"] = {"head": "new", "steps": 10}
    return spec


@pytest.mark.parametrize("method", ["smp", "magnitude-unstructured"])
def test_a_speed_axis_sweep_of_an_unstructured_method_is_refused_naming_the_field(client, auth, model_root, method):
    weights = {"params_reduction": [0.5, 0.9]}
    r = client.post("/jobs", json=_sweep(model_root, method, weights, axis="speedup"), headers=auth)
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == "axis", r.text
    assert "dense speedup is none by construction" in error["message"] and "remaining_weights" in error["message"]

    r = client.post("/jobs", json=_sweep(model_root, method, {"flops_reduction": [0.2, 0.4]}), headers=auth)
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == "targets.flops_reduction", r.text
    assert "dense speedup is none by construction" in error["message"]

    r = client.post("/jobs", json=_sweep(model_root, method, weights), headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["axis"] is None and parse_spec(r.json()["spec"]).x_axis == "remaining_weights"


def test_a_structured_sweep_plots_against_speedup_unless_it_asks_for_the_remaining_weights(client, auth, model_root):
    flops = {"flops_reduction": [0.1, 0.3]}
    r = client.post("/jobs", json=_sweep(model_root, "ppruning", flops), headers=auth)
    assert r.status_code == 202, r.text
    assert parse_spec(r.json()["spec"]).x_axis == "speedup"
    r = client.post("/jobs", json=_sweep(model_root, "ppruning", flops, axis="remaining_weights"), headers=auth)
    assert r.status_code == 202 and parse_spec(r.json()["spec"]).x_axis == "remaining_weights"


def test_a_sweeps_teacher_is_checked_at_submission_and_given_to_every_child(client, auth, model_root):
    weights = {"params_reduction": [0.5, 0.9]}
    unknown = _sweep(model_root, "smp", weights, distill={"from_job": str(uuid.uuid4())})
    r = client.post("/jobs", json=unknown, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "distill.from_job"
    named = _sweep(model_root, "smp", weights, distill={"teacher": {"id": str(model_root / "bert")}})
    r = client.post("/jobs", json=named, headers=auth)
    assert r.status_code == 202, r.text
    children = parse_spec(r.json()["spec"]).child_specs()
    assert all(c["distill"]["teacher"]["id"] == str((model_root / "bert").resolve()) for c in children)
