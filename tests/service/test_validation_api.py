"""Bad input of every sort: a clear 4xx in the one error shape, naming the field, and nothing written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.service.conftest import count_jobs


def _assert_rejected(r, status: int, field: str | None, pg_url: str, owner: str, dispatcher) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) <= {"type", "message", "field", "problems"} and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    assert count_jobs(pg_url, owner) == 0 and dispatcher.sent == []
    return error


def _with(spec: dict, path: str, value) -> dict:  # type: ignore[no-untyped-def]
    """A copy of ``spec`` with the dotted ``path`` set (``value=...`` deletes it)."""
    out = copy.deepcopy(spec)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return out


BAD_SPECS = [
    # (change to the valid prune spec, field named, error type)
    ("kind", ..., "kind", "validation_error"),
    ("kind", "compress", "kind", "validation_error"),  # "sweep" is a kind since issue 8
    ("target.flops_reduction", 1.5, "target.flops_reduction", "validation_error"),
    ("target.flops_reduction", -0.1, "target.flops_reduction", "validation_error"),
    ("target.params_reduction", 0.2, "target", "validation_error"),
    ("target.flops_reduction", 0.99, "target.flops_reduction", "infeasible_target"),
    ("method", "nope", "method", "unknown_method"),
    ("params.lambda_val", "heavy", "params.lambda_val", "invalid_params"),
    ("params.bogus", 1, "params.bogus", "invalid_params"),
    ("task.name", "nope", "task.name", "unknown_task"),
    ("task.text_column", "sentence", "task.text_column", "invalid_config"),
    ("seed", -1, "seed", "validation_error"),
    ("device", "tpu", "device", "validation_error"),
    ("surprise", 1, "surprise", "validation_error"),
    ("model", ..., "model", "validation_error"),
    ("model.id", "", "model.id", "validation_error"),
    ("model.id", "not a hub id!", "model.id", "validation_error"),
    ("model.id", "/etc", "model.id", "validation_error"),
]


@pytest.mark.parametrize(("path", "value", "field", "type_"), BAD_SPECS, ids=[f"{p}={v!r}" for p, v, *_ in BAD_SPECS])
def test_a_bad_prune_spec_is_422_naming_the_field(
    client, auth, prune_spec, dispatcher, pg_url, owner, path, value, field, type_
):
    r = client.post("/jobs", json=_with(prune_spec, path, value), headers=auth)
    error = _assert_rejected(r, 422, field, pg_url, owner, dispatcher)
    assert error["type"] == type_


def test_a_misspelled_key_is_the_primary_problem_with_a_suggestion_and_every_problem_is_listed(
    client, auth, prune_spec, dispatcher, pg_url, owner
):
    spec = _with(_with(prune_spec, "target", ...), "targt", {"flops_reduction": 0.3})
    error = _assert_rejected(client.post("/jobs", json=spec, headers=auth), 422, "targt", pg_url, owner, dispatcher)
    assert "'target'" in error["message"] and error["message"].startswith("targt: unknown key"), error
    assert [p["field"] for p in error["problems"]] == ["targt", "target"], error
    nested = _with(prune_spec, "sampling.max_instanses", 8)
    error = _assert_rejected(client.post("/jobs", json=nested, headers=auth), 422, None, pg_url, owner, dispatcher)
    assert error["field"] == "sampling.max_instanses" and "did you mean 'max_instances'?" in error["message"]


def test_a_misspelled_task_suggests_the_registered_name(client, auth, prune_spec, dispatcher, pg_url, owner):
    error = _assert_rejected(
        client.post("/jobs", json=_with(prune_spec, "task.name", "sst-2"), headers=auth),
        422, "task.name", pg_url, owner, dispatcher,
    )  # fmt: skip
    assert "did you mean 'sst2'?" in error["message"]


def test_a_text_only_file_is_enough_for_an_unlabeled_method_not_for_a_labelled_one(
    client, auth, prune_spec, model_root, dispatcher, pg_url, owner
):
    (model_root / "data" / "texts.csv").write_text("text\nfine movie\nbad movie\n")
    task = {"name": "text-classification", "data_files": {"train": str(model_root / "data" / "texts.csv")}}
    ok = client.post("/jobs", json=_with(_with(prune_spec, "task", task), "target.flops_reduction", 0.2), headers=auth)
    assert ok.status_code == 202, ok.text  # P-pruning reads unlabeled inputs
    dispatcher.sent.clear()
    from tests.service.conftest import _new_key

    other = f"other-{owner}"
    smp = {**prune_spec, "method": "smp", "task": task, "target": {"params_reduction": 0.3}}
    r = client.post("/jobs", json=smp, headers={"Authorization": f"Bearer {_new_key(pg_url, other)}"})
    error = _assert_rejected(r, 422, "task.label_column", pg_url, other, dispatcher)
    assert "'label'" in error["message"]


def test_a_hub_id_the_reachable_hub_does_not_know_is_refused_at_submission(
    client, auth, prune_spec, dispatcher, pg_url, owner, monkeypatch
):
    from huggingface_hub import constants

    from tests.support.fake_hub import hub_without_repositories

    with hub_without_repositories() as endpoint:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        r = client.post("/jobs", json=_with(prune_spec, "model.id", "org/bert-base-uncsed"), headers=auth)
    error = _assert_rejected(r, 422, "model.id", pg_url, owner, dispatcher)
    assert "not a repository" in error["message"] and "spelling" in error["message"], error


def test_offline_a_hub_id_is_accepted_for_the_workers_to_check(client, auth, prune_spec, dispatcher):
    r = client.post("/jobs", json=_with(prune_spec, "model.id", "org/not-in-this-cache"), headers=auth)
    assert r.status_code == 202, r.text  # the workers may reach the hub or have it cached


def test_paths_outside_the_allowed_roots_are_refused(client, auth, prune_spec, model_root, dispatcher, pg_url, owner):
    for bad in [
        f"{model_root}/../{model_root.name}/bert",  # traversal, even when it would land inside
        str(model_root / "escape"),  # a symlink pointing outside the root
        str(model_root / "missing"),
        "~/models/bert",
        "./bert",
    ]:
        r = client.post("/jobs", json=_with(prune_spec, "model.id", bad), headers=auth)
        error = _assert_rejected(r, 422, "model.id", pg_url, owner, dispatcher)
        if "not allowed" in error["message"]:
            assert bad in error["message"], error  # the path as given, so the user sees which one


def test_an_unsupported_model_type_is_422(client, auth, prune_spec, model_root, dispatcher, pg_url, owner):
    t5 = model_root / "t5"
    t5.mkdir(exist_ok=True)
    (t5 / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 8, "num_layers": 1, "num_heads": 2}))
    r = client.post("/jobs", json=_with(prune_spec, "model.id", str(t5)), headers=auth)
    error = _assert_rejected(r, 422, "model.id", pg_url, owner, dispatcher)
    assert error["type"] == "unsupported_model" and "t5" in error["message"]


def test_custom_task_files_must_exist_inside_the_allowed_roots(
    client, auth, prune_spec, model_root, dispatcher, pg_url, owner
):
    custom = {
        "name": "text-classification",
        "data_files": {"train": str(model_root / "data" / "train.csv")},
        "text_column": "sentence",
    }
    spec = _with(prune_spec, "target.flops_reduction", 0.2)
    ok = client.post("/jobs", json=_with(spec, "task", custom), headers=auth)
    assert ok.status_code == 202, ok.text
    dispatcher.sent.clear()
    other = f"other-{owner}"
    from tests.service.conftest import _new_key

    headers = {"Authorization": f"Bearer {_new_key(pg_url, other)}"}
    for files, field in [
        ({"train": "/etc/passwd.csv"}, "task.data_files.train"),
        ({"train": str(model_root / "data" / "nope.csv")}, "task.data_files.train"),
        ({"validation": str(model_root / "data" / "train.csv")}, "task.data_files"),
    ]:
        r = client.post("/jobs", json=_with(prune_spec, "task", {**custom, "data_files": files}), headers=headers)
        _assert_rejected(r, 422, field, pg_url, other, dispatcher)
    no_files = client.post("/jobs", json=_with(prune_spec, "task", {"name": "text-classification"}), headers=headers)
    _assert_rejected(no_files, 422, "task.data_files", pg_url, other, dispatcher)


def test_bad_finetune_and_pipeline_specs_name_the_field(client, auth, prune_spec, dispatcher, pg_url, owner):
    base = {"kind": "finetune", "model": prune_spec["model"], "task": {"name": "sst2"}}
    cases = [
        ({**base, "from_job": "0b7c3c1e-8a0e-4a8b-9a59-0f4c6c1d2e3f"}, None),
        ({k: v for k, v in base.items() if k != "model"}, None),
        ({**base, "learning_rate": 0}, "learning_rate"),
        ({**base, "preset": "fast"}, "preset"),
        ({**base, "from_job": "yesterday", "model": None}, "from_job"),
        ({**base, "masks": "/etc"}, "masks"),
        ({**prune_spec, "kind": "pipeline", "finetune": {"epochs": 0}}, "finetune.epochs"),
        ({**prune_spec, "kind": "pipeline", "finetune": {"model": {"id": "x"}}}, "finetune.model"),
    ]
    for spec, field in cases:
        r = client.post("/jobs", json=spec, headers=auth)
        _assert_rejected(r, 422, field, pg_url, owner, dispatcher)


def test_malformed_json_is_400(client, auth, dispatcher, pg_url, owner):
    for body in [b'{"kind": "prune",', b"\xff\xfe", b"not json"]:
        r = client.post("/jobs", content=body, headers={**auth, "Content-Type": "application/json"})
        error = _assert_rejected(r, 400, None, pg_url, owner, dispatcher)
        assert error["type"] == "malformed_json"
    r = client.post("/jobs", content=b"kind=prune", headers={**auth, "Content-Type": "text/plain"})
    _assert_rejected(r, 400, None, pg_url, owner, dispatcher)


def test_a_body_that_is_not_an_object_or_is_missing_is_a_clear_4xx(client, auth, dispatcher, pg_url, owner):
    for body in ["[]", '"prune"', "42", "null"]:
        r = client.post("/jobs", content=body, headers={**auth, "Content-Type": "application/json"})
        _assert_rejected(r, 422, None, pg_url, owner, dispatcher)
    _assert_rejected(client.post("/jobs", headers=auth), 422, None, pg_url, owner, dispatcher)


def test_an_oversized_body_is_413_whether_declared_or_streamed(
    client, auth, prune_spec, dispatcher, pg_url, owner, service_settings
):
    big = json.dumps(_with(prune_spec, "model.revision", "x" * (service_settings.max_body_bytes + 10))).encode()
    r = client.post("/jobs", content=big, headers={**auth, "Content-Type": "application/json"})
    assert _assert_rejected(r, 413, None, pg_url, owner, dispatcher)["type"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is counted while the body streams
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = client.post("/jobs", content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert _assert_rejected(r, 413, None, pg_url, owner, dispatcher)["type"] == "payload_too_large"


STRING_FIELDS = [
    "model.id",
    "model.revision",
    "task.name",
    "task.text_column",
    "method",
    "device",
    "params.distance_mode",
]


@pytest.mark.parametrize("path", STRING_FIELDS)
def test_a_huge_string_in_any_field_is_422_naming_it(client, auth, prune_spec, dispatcher, pg_url, owner, path):
    r = client.post("/jobs", json=_with(prune_spec, path, "é" * 5000), headers=auth)
    error = _assert_rejected(r, 422, None, pg_url, owner, dispatcher)
    assert error["field"].startswith(path.split(".")[0]), error


@pytest.mark.parametrize("path", STRING_FIELDS)
def test_unicode_in_any_field_is_a_clear_422(client, auth, prune_spec, dispatcher, pg_url, owner, path):
    r = client.post("/jobs", json=_with(prune_spec, path, "bert-ü\u200b😀\x00"), headers=auth)
    error = _assert_rejected(r, 422, None, pg_url, owner, dispatcher)
    assert error["field"].startswith(path.split(".")[0]), error


def test_unicode_where_it_is_legal_is_stored_verbatim(client, auth, prune_spec):
    r = client.post(
        "/jobs",
        json=_with(prune_spec, "task.name", "sst2"),
        headers={**auth, "Idempotency-Key": "ключ-🔑".encode().hex()},
    )
    assert r.status_code == 202


def test_an_overlong_idempotency_key_is_422(client, auth, prune_spec, dispatcher, pg_url, owner):
    r = client.post("/jobs", json=prune_spec, headers={**auth, "Idempotency-Key": "k" * 256})
    _assert_rejected(r, 422, "Idempotency-Key", pg_url, owner, dispatcher)


def test_openapi_has_an_example_for_every_job_kind(client):
    schema = client.get("/openapi.json").json()
    examples = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"prune", "prune-smp", "finetune", "pipeline", "pipeline-gated", "sweep", "sweep-smp"}
    assert examples["prune"]["value"]["target"] == {"flops_reduction": 0.3}
    assert "bearerAuth" in json.dumps(schema["components"]["securitySchemes"]) or "HTTPBearer" in json.dumps(
        schema["components"]["securitySchemes"]
    )


def test_every_example_of_the_openapi_document_validates(client, auth, prune_spec, pg_url):
    from jobs.kinds import openapi_examples, parse_spec

    for example in openapi_examples().values():
        assert parse_spec(example["value"]).kind == example["value"]["kind"]
    assert Path(prune_spec["model"]["id"]).is_dir()
