"""Discovery: ``GET /methods`` and ``GET /tasks`` come from the registries, and a method's
published JSON Schemas accept and reject exactly the specs that ``POST /jobs`` does."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from jobs.settings import Settings
from ppruning.cli.main import main
from ppruning.methods.registry import all_methods
from ppruning.tasks.registry import all_tasks
from tests.service.conftest import RecordingDispatcher

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "custom"
KEY = "discovery-secret"


@pytest.fixture(scope="module")
def client(pg_url: str, tiny_bert_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("discovery"),
        database_url=pg_url,
        broker_url="redis://127.0.0.1:6379/15",  # unused: the dispatcher records
        artifact_root=tmp_path_factory.mktemp("discovery-artifacts").as_uri(),
        allowed_model_roots=[tiny_bert_path, FIXTURES],
        api_keys=[f"discovery-owner:{KEY}"],
        callback_secret="discovery-callback-key",
    )
    app = create_app(settings, dispatcher=RecordingDispatcher())
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as c:
            yield c
    finally:  # never run: real workers of later tests in this database would pick the queued rows up
        from sqlalchemy import delete

        from jobs.store.models import Job
        from jobs.store.session import get_sessionmaker

        with get_sessionmaker(pg_url).begin() as session:
            session.execute(delete(Job).where(Job.owner == "discovery-owner"))


def _base(model: Path, kind: str, method: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": {"id": str(model)},
        "task": {"name": "sst2"},
        "method": method,
        "target": {"flops_reduction": 0.2},
    }


def _custom_task(**files: str) -> dict[str, Any]:
    return {
        "name": "text-classification",
        "data_files": files,
        "text_column": "review",
        "label_column": "sentiment",
    }


#: (label, changes to the base spec); ``None`` as a value removes the key.
CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "ppruning": [
        ("defaults", {}),
        ("own params", {"params": {"max_instances": 10, "lambda_val": 2.5, "distance_mode": "reference"}}),
        ("params target", {"target": {"params_reduction": 0.2}, "seed": 7, "device": "cpu"}),
        ("custom task", {"task": _custom_task(train=str(FIXTURES / "reviews_train.csv"))}),
        ("unknown param", {"params": {"max_instance": 10}}),
        ("param below range", {"params": {"max_instances": 0}}),
        ("param not an integer", {"params": {"max_instances": 2.5}}),
        ("param not a choice", {"params": {"distance_mode": "euclid"}}),
        ("null where a number is needed", {"params": {"lambda_val": None}}),
        ("two targets", {"target": {"flops_reduction": 0.3, "params_reduction": 0.3}}),
        ("no target value", {"target": {}}),
        ("target out of range", {"target": {"flops_reduction": 1.0}}),
        ("unknown task", {"task": {"name": "imagenet"}}),
        ("hub task with a custom column", {"task": {"name": "sst2", "text_column": "x"}}),
        ("custom task without files", {"task": {"name": "text-classification"}}),
        ("custom split name", {"task": _custom_task(train=str(FIXTURES / "reviews_train.csv"), dev="x.csv")}),
        ("custom file suffix", {"task": _custom_task(train=str(FIXTURES / "reviews_train.xlsx"))}),
        ("negative seed", {"seed": -1}),
        ("unknown device", {"device": "tpu"}),
        ("unknown top-level key", {"epochs": 3}),
        ("no model", {"model": None}),
    ],
    "magnitude": [
        ("defaults", {}),
        ("own params", {"params": {"allocation": "global", "lambda_val": 0.0}}),
        ("another method's param", {"params": {"max_instances": 10}}),
        ("param not a choice", {"params": {"allocation": "local"}}),
    ],
    "random": [
        ("allocation", {"params": {"allocation": "uniform"}}),
        ("param above range", {"params": {"lambda_val": 5000}}),
    ],
}
PIPELINE_CASES = [
    ("finetune options", {"finetune": {"epochs": 1, "learning_rate": 3e-5}}),
    ("finetune below range", {"finetune": {"epochs": 0}}),
    ("finetune gets its model from the pipeline", {"finetune": {"model": {"id": "bert-base-uncased"}}}),
    ("unknown precision", {"finetune": {"precision": "fp8"}}),
    ("quality gate", {"finetune": {"epochs": 1}, "accept": {"max_metric_drop": 0.01}}),
    ("gate with an unknown criterion", {"finetune": {"epochs": 1}, "accept": {"max_drop": 0.01}}),
    ("callback", {"callback_url": "https://ci.example.com/hook"}),
    ("callback not a URL", {"callback_url": 42}),
]
SWEEP_CASES = [
    ("three targets", {"targets": {"flops_reduction": [0.1, 0.2, 0.3]}}),
    ("params targets, fine-tuned", {"targets": {"params_reduction": [0.2, 0.4]}, "finetune": {"epochs": 1}}),
    ("both kinds of target", {"targets": {"flops_reduction": [0.2], "params_reduction": [0.2]}}),
    ("a target out of range", {"targets": {"flops_reduction": [0.2, 1.5]}}),
    ("a single target instead of a list", {"targets": {"flops_reduction": 0.2}}),
]


def _apply(spec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for key, value in changes.items():
        if value is None and key != "params":
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def _agree(client: TestClient, schema: dict[str, Any], spec: dict[str, Any], label: str) -> bool:
    valid = jsonschema.Draft202012Validator(schema).is_valid(spec)
    response = client.post("/jobs", json=spec)
    assert response.status_code in (202, 422), (label, response.status_code, response.text)
    assert valid == (response.status_code == 202), (label, valid, response.json())
    return valid


def test_methods_schemas_accept_and_reject_what_post_jobs_does(client: TestClient, tiny_bert_path: Path) -> None:
    methods = {m["name"]: m for m in client.get("/methods").json()["items"]}
    assert set(methods) == set(all_methods())
    outcomes: dict[str, list[bool]] = {}
    for name, cases in CASES.items():
        schema = methods[name]["spec_schemas"]["prune"]
        jsonschema.Draft202012Validator.check_schema(schema)
        for label, changes in cases:
            spec = _apply(_base(tiny_bert_path, "prune", name), changes)
            outcomes.setdefault(name, []).append(_agree(client, schema, spec, f"{name}: {label}"))
    pipeline = methods["ppruning"]["spec_schemas"]["pipeline"]
    for label, changes in PIPELINE_CASES:
        spec = _apply(_base(tiny_bert_path, "pipeline", "ppruning"), changes)
        outcomes["pipeline"] = [*outcomes.get("pipeline", []), _agree(client, pipeline, spec, f"pipeline: {label}")]
    sweep = methods["ppruning"]["spec_schemas"]["sweep"]
    for label, changes in SWEEP_CASES:
        spec = _apply(_base(tiny_bert_path, "sweep", "ppruning"), {"target": None, **changes})
        outcomes["sweep"] = [*outcomes.get("sweep", []), _agree(client, sweep, spec, f"sweep: {label}")]
    # Both verdicts occur for every method: the comparison is not trivially all-accept or all-reject.
    assert all(any(v) and not all(v) for v in outcomes.values()), outcomes
    assert outcomes["ppruning"][:4] == [True] * 4


def test_a_stored_spec_has_the_defaults_the_method_publishes(client: TestClient, tiny_bert_path: Path) -> None:
    described = {m["name"]: m for m in client.get("/methods").json()["items"]}
    for name in all_methods():
        spec = _base(tiny_bert_path, "prune", name)
        if "flops" not in described[name]["targets"]:  # unstructured methods take a params target
            spec["target"] = {"params_reduction": 0.2}
        expected = dict(described[name]["defaults"])
        response = client.post("/jobs", json=spec)
        if response.status_code == 422 and response.json()["error"]["field"] == "params.head":
            spec["params"] = {"head": "new"}  # the tiny encoder has no MLM head: the method says which to use
            expected["head"] = "new"
            response = client.post("/jobs", json=spec)
        if response.status_code == 422:  # the method does not take this model (a decoder-only method)
            assert response.json()["error"]["field"] == "model.id", response.text
            continue
        assert response.json()["spec"]["params"] == expected
        rows = {p["name"]: p for p in described[name]["parameters"]}
        assert {n: p["default"] for n, p in rows.items()} == described[name]["defaults"]


def test_method_rows_carry_ranges_choices_and_model_families(client: TestClient) -> None:
    from ppruning.arch import supported_model_types

    method = client.get("/methods/ppruning").json()
    rows = {p["name"]: p for p in method["parameters"]}
    assert rows["lambda_val"] | {"description": ""} == {
        "name": "lambda_val", "type": "number", "default": 5.0, "required": False,
        "minimum": 0.0, "maximum": 1000.0, "description": "",
    }  # fmt: skip
    assert method["sampling_defaults"]["max_instances"] == 3000  # the sampling block every method accepts
    assert rows["head_matching"]["choices"] == ["greedy", "hungarian"]
    assert method["model_types"] == supported_model_types() and not method["model_types_restricted"]
    assert client.get("/methods/nope").status_code == 404
    assert client.get("/methods", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_tasks_list_every_task_with_its_fields_and_metrics(client: TestClient) -> None:
    tasks = {t["name"]: t for t in client.get("/tasks").json()["items"]}
    assert set(tasks) == set(all_tasks())
    custom = tasks["text-pair-classification"]
    assert custom["custom"] and set(custom["required_fields"]) == set(all_tasks()[custom["name"]].required_fields)
    assert tasks["mnli"]["eval_splits"] == ["validation_matched", "validation_mismatched"]
    assert tasks["stsb"]["main_metric"] in tasks["stsb"]["metrics"]
    assert tasks["wikitext-2"]["greater_is_better"] is False


def test_the_cli_prints_what_the_api_serves(client: TestClient, capsys: pytest.CaptureFixture) -> None:
    assert main(["methods", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    served = client.get("/methods").json()["items"]
    assert printed == [{k: v for k, v in m.items() if k != "spec_schemas"} for m in served]
    assert main(["tasks", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {t["name"]: t for t in client.get("/tasks").json()["items"]}
    assert main(["methods"]) == 0
    assert "lambda_val: number = 5.0 (>=0.0 <=1000.0)" in capsys.readouterr().out
