"""The Python SDK (``ppruning_client.Client``) covers every operation of the API, against the real app.

The routes are read from the app's own OpenAPI schema, so a route added to the API without an
SDK method fails here; each SDK method is then called against the app (real PostgreSQL).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ppruning_client import Client, ClientError


def _routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(HTTP method, path) of every operation the app documents in its OpenAPI schema."""
    verbs = {"get", "post", "put", "patch", "delete"}
    return {(verb.upper(), path) for path, item in app.openapi()["paths"].items() for verb in item if verb in verbs}


def test_the_sdk_has_a_method_for_every_route_of_the_api(app) -> None:  # type: ignore[no-untyped-def]
    routes = _routes(app)
    assert len(routes) >= 14
    covered = set(Client.OPERATIONS.values())
    assert routes - covered == set(), "API routes the SDK has no method for"
    assert covered - routes == set(), "SDK methods whose route the API no longer has"
    for name in Client.OPERATIONS:
        method = getattr(Client, name, None)
        assert callable(method) and inspect.getdoc(method), f"Client.{name} is missing or undocumented"


#: The verbs an operation id may start with: what the operation does, as a generated client names it.
VERBS = ("submit", "get", "list", "cancel", "delete", "download", "check")


def _operation_ids(app) -> dict[tuple[str, str], str]:  # type: ignore[no-untyped-def]
    verbs = {"get", "post", "put", "patch", "delete"}
    paths = app.openapi()["paths"].items()
    return {(v.upper(), path): op["operationId"] for path, item in paths for v, op in item.items() if v in verbs}


def _stem(word: str) -> str:
    return word.removesuffix("s")


def _lines_up(sdk_name: str, operation_id: str) -> bool:
    """Every word of the SDK method's name (``event_page``: ``event``) begins a word of the operation id."""
    op_words = [_stem(w) for w in operation_id.split("_")]
    wanted = [_stem(w) for w in sdk_name.split("_") if w != "page"]
    return all(any(op.startswith(w) for op in op_words) for w in wanted)


def test_every_operation_id_reads_as_a_verb_and_lines_up_with_its_sdk_method(app) -> None:  # type: ignore[no-untyped-def]
    ids = _operation_ids(app)
    pattern = re.compile(rf"({'|'.join(VERBS)})(_[a-z]+)+")
    assert [i for i in ids.values() if not pattern.fullmatch(i)] == [], "operation ids that do not start with a verb"
    assert len(set(ids.values())) == len(ids)
    assert ids[("POST", "/jobs")] == "submit_job" and ids[("GET", "/jobs")] == "list_jobs"
    assert ids[("GET", "/jobs/{job_id}")] == "get_job" and ids[("POST", "/jobs/{job_id}/cancel")] == "cancel_job"
    crossed = {name: ids[route] for name, route in Client.OPERATIONS.items() if not _lines_up(name, ids[route])}
    assert crossed == {}, "SDK methods whose name does not match their operation id"


def _sdk(client, auth: dict[str, str]) -> Client:  # type: ignore[no-untyped-def]
    return Client("http://testserver", auth["Authorization"].removeprefix("Bearer "), http=client)


def test_every_sdk_method_works_against_the_service(client, auth, prune_spec) -> None:  # type: ignore[no-untyped-def]
    sdk = _sdk(client, auth)
    first = sdk.submit(prune_spec)
    second = sdk.submit(prune_spec, idempotency_key="sdk-coverage")
    assert sdk.submit(prune_spec, idempotency_key="sdk-coverage")["id"] == second["id"]

    assert sdk.job(first["id"])["state"] == "queued"
    page = sdk.jobs(state=["queued"], kind=["prune"], limit=1)
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert [j["id"] for j in sdk.iter_jobs(state=["queued"], page_size=1)] == [second["id"], first["id"]]
    assert sdk.jobs(kind=["sweep"])["items"] == []
    assert sdk.jobs(parent=first["id"])["items"] == []

    assert sdk.event_page(first["id"])["items"]  # the submission is logged
    assert sdk.artifacts(first["id"]) == []

    assert sdk.cancel(first["id"])["state"] == "cancelled"
    with pytest.raises(ClientError) as finished:
        sdk.cancel(first["id"])
    assert finished.value.status == 409
    sdk.delete(first["id"])
    with pytest.raises(ClientError) as gone:
        sdk.job(first["id"])
    assert gone.value.status == 404
    with pytest.raises(ClientError) as running:
        sdk.delete(second["id"])
    assert running.value.status == 409

    methods = sdk.methods()
    assert sdk.method(methods[0]["name"])["name"] == methods[0]["name"]
    assert any(t["name"] == "sst2" for t in sdk.tasks())
    assert sdk.health() == {"status": "ok"}
    assert sdk.ready()["status"] == "ready"
    assert "ppruning" in sdk.metrics()


def test_a_refused_spec_names_its_field_in_the_sdks_error(client, auth, prune_spec) -> None:  # type: ignore[no-untyped-def]
    spec = {**prune_spec, "target": {"flops_reduction": 7}}
    with pytest.raises(ClientError) as refused:
        _sdk(client, auth).submit(spec)
    assert refused.value.status == 422 and refused.value.field == "target.flops_reduction"
    assert "target.flops_reduction" in str(refused.value)


def test_the_readme_documents_every_sdk_method() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Python SDK") :]
    missing = [name for name in Client.OPERATIONS if f"`{name}(" not in section and f" {name}(" not in section]
    assert missing == [], "SDK methods the README's SDK section does not name"
