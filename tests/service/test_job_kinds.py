"""A job kind is one declaration (jobs.kinds) plus one runner (worker.runners): the checks built from them.

Every declared kind must have a runner, OpenAPI examples and a discovery entry; a kind that
is not declared raises wherever a kind is looked up instead of falling into a default; and a
throw-away kind declared in a test (in a fresh process, before the service is imported) is
picked up by the API and the worker, which refuses to start while it has no runner.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from jobs.kinds import (
    KindDeclaration,
    KindDeclarationError,
    UnknownJobKind,
    check_spawn,
    checked_spec,
    declare,
    job_kind,
    job_kinds,
    parse_spec,
    progress_phases,
)
from jobs.kinds.registry import SHARED_FIELDS
from jobs.specs import SweepJobSpec
from worker import runners

REPO = Path(__file__).resolve().parents[2]


def _openapi_body(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]


@pytest.mark.parametrize("kind", job_kinds())
def test_every_declared_kind_has_a_runner_an_example_and_a_discovery_entry(kind, client, auth):
    declaration = job_kind(kind)
    assert runners.runner_for(kind) is runners.RUNNERS[kind]
    schema = client.get("/openapi.json").json()
    body = _openapi_body(schema)
    assert [e for e in body["examples"].values() if e["value"]["kind"] == kind], f"{kind}: no OpenAPI example"
    assert declaration.spec.__name__ in {ref["$ref"].rsplit("/", 1)[-1] for ref in body["schema"]["oneOf"]}
    assert kind in schema["components"]["schemas"]["JobKind"]["enum"]  # the GET /jobs?kind= filter
    methods = client.get("/methods", headers=auth).json()["items"]
    if declaration.runs_method:  # its spec's schema, specialised to every method
        assert all(method["spec_schemas"][kind]["title"] == declaration.spec.__name__ for method in methods)
    else:
        assert not any(kind in method["spec_schemas"] for method in methods)


def test_no_declared_kind_lacks_a_runner():
    """The sentinel: declaring a kind without adding its runner to worker/runners.py fails here."""
    assert runners.runner_problems() == []


def test_a_missing_runner_or_one_of_the_wrong_shape_is_named(monkeypatch):
    monkeypatch.delitem(runners.RUNNERS, "finetune")
    monkeypatch.setitem(runners.RUNNERS, "sweep", runners.Runner(stages=lambda *args: None))
    problems = runners.runner_problems()
    assert problems == [
        "job kind 'finetune' has no runner",
        "job kind 'sweep' spawns ['prune', 'pipeline'] but its runner runs stages",
    ]
    with pytest.raises(runners.NoRunner, match="'finetune' has no runner"):
        runners.check_runners()
    with pytest.raises(runners.NoRunner, match="no runner for job kind 'finetune'"):
        runners.runner_for("finetune")


class _MysterySpec(BaseModel):
    kind: Literal["mystery"]
    callback_url: str | None = None
    spec_version: int = 1


def test_an_undeclared_kind_raises_wherever_a_kind_is_looked_up(service_settings, db_session):
    with pytest.raises(UnknownJobKind, match="'mystery' is not declared"):
        job_kind("mystery")
    with pytest.raises(UnknownJobKind):  # no longer a prune plan by default
        progress_phases("mystery", {"kind": "mystery"})
    with pytest.raises(UnknownJobKind):  # no longer checked as a fine-tune by default
        checked_spec(_MysterySpec(kind="mystery"), service_settings, db_session, "someone")
    with pytest.raises(UnknownJobKind):
        runners.runner_for("mystery")
    with pytest.raises(ValueError, match="union_tag_invalid|does not match any of the expected tags"):
        parse_spec({"kind": "mystery"})


def test_a_declaration_that_contradicts_itself_is_refused():
    def plan(spec: dict[str, Any]) -> list:
        return []

    example = {"one": {"summary": "", "value": {"kind": "mystery"}}}
    fine = {"spec": _MysterySpec, "summary": "", "check": lambda *a: a[0], "plan": plan, "examples": example}
    with pytest.raises(KindDeclarationError, match="must be Literal"):
        KindDeclaration(name="other", **fine)
    with pytest.raises(KindDeclarationError, match="no OpenAPI example"):
        KindDeclaration(name="mystery", **{**fine, "examples": {}})

    class Bare(BaseModel):
        kind: Literal["mystery"]

    with pytest.raises(KindDeclarationError, match="lacks callback_url, spec_version"):
        KindDeclaration(name="mystery", **{**fine, "spec": Bare})
    assert {"kind", "callback_url", "spec_version"} == SHARED_FIELDS
    with pytest.raises(KindDeclarationError, match="declared twice"):
        declare(job_kind("prune"))
    with pytest.raises(KindDeclarationError, match="spawns undeclared kinds: nothing-here"):
        declare(KindDeclaration(name="mystery", **fine, spawns=("nothing-here",)))
    with pytest.raises(KindDeclarationError, match="example names already used: prune"):
        declare(KindDeclaration(name="mystery", **{**fine, "examples": {"prune": example["one"]}}))
    assert "mystery" not in job_kinds()


def test_a_sweep_creates_only_the_kinds_its_declaration_says_it_spawns(prune_spec):
    base = {k: v for k, v in prune_spec.items() if k != "target"}
    for extra in ({}, {"finetune": {"epochs": 1}}):
        sweep = SweepJobSpec.model_validate({**base, "kind": "sweep", "targets": {"flops_reduction": [0.2]}, **extra})
        for child in sweep.child_specs():
            check_spawn("sweep", child["kind"])
    with pytest.raises(KindDeclarationError, match="a sweep job may not create a finetune job"):
        check_spawn("sweep", "finetune")
    with pytest.raises(KindDeclarationError, match="spawns: nothing"):
        check_spawn("prune", "prune")


def test_no_module_of_the_service_spells_a_store_prefix_by_hand():
    """Keys of the artifact store are built by jobs/artifacts.py only (job_prefix, job_key, ...)."""
    spelled = re.compile(r"""f?["']jobs/""")
    found = [
        f"{path.relative_to(REPO)}:{n}"
        for package in ("jobs", "api", "worker")
        for path in sorted((REPO / package).rglob("*.py"))
        if path != REPO / "jobs" / "artifacts.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line)
    ]
    assert not found, found


# --------------------------------------------------------------------------- a throw-away kind, end to end

_ECHO = '''
"""A throw-away job kind, declared before the service is imported: echo a text back as an artifact."""
import json, sys, uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobs.kinds import KindDeclaration, declare
from jobs.spec_fields import CallbackUrl, SpecVersion
from ppruning import TaskRef

class EchoJobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["echo"]
    callback_url: CallbackUrl
    spec_version: SpecVersion
    task: TaskRef
    method: str = "ppruning"
    params: dict[str, Any] = Field(default_factory=dict)
    text: str = Field(max_length=100)

def check(spec, settings, session, owner):
    return spec.model_copy(update={"text": spec.text.strip()})

declare(KindDeclaration(
    name="echo", spec=EchoJobSpec, summary="write a text back as an artifact", check=check,
    plan=lambda spec: [("echo", ("write",))],
    examples={"echo": {"summary": "Echo a text", "value": {"kind": "echo", "task": {"name": "sst2"}, "text": "hi"}}},
))

from fastapi.testclient import TestClient
from api.main import create_app
from jobs.settings import Settings
from jobs.store.claims import claim_job
from jobs.store.session import get_sessionmaker

pg_url, data = sys.argv[1], Path(sys.argv[2])
owner = f"echo-{uuid.uuid4().hex[:8]}"
settings = Settings(data_dir=data, database_url=pg_url, artifact_root=(data / "store").as_uri(),
                    api_keys=[f"{owner}:echo-secret"])
class Recorder:
    def send(self, job_id, queue): pass
    def ping(self): pass
out = {}
headers = {"Authorization": "Bearer echo-secret"}
body = {"kind": "echo", "task": {"name": "sst2"}, "text": "  hello  "}
with TestClient(create_app(settings, dispatcher=Recorder())) as client:
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    out["union"] = [ref["$ref"].rsplit("/", 1)[-1] for ref in post["schema"]["oneOf"]]
    out["examples"] = sorted(post["examples"])
    out["kind_filter"] = schema["components"]["schemas"]["JobKind"]["enum"]
    out["described"] = "`echo`: write a text back" in schema["info"]["description"]
    methods = client.get("/methods", headers=headers).json()["items"]
    out["discovery"] = sorted({kind for m in methods for kind in m["spec_schemas"]})
    out["bad_kind"] = client.post("/jobs", json={"kind": "nope"}, headers=headers).json()["error"]["message"]
    first = client.post("/jobs", json=body, headers=headers).json()
    second = client.post("/jobs", json=body, headers=headers).json()
    out["checked"] = first["spec"]["text"]
    out["listed"] = len(client.get("/jobs", params={"kind": "echo"}, headers=headers).json()["items"])

from worker import runners
out["problems"] = runners.runner_problems()
try:
    import worker.tasks  # noqa: F401  (what `celery worker` imports first)
    out["worker_start"] = "started"
except runners.NoRunner as exc:
    out["worker_start"] = str(exc)

from worker.attempt import run_attempt
from worker.job_runners import Outputs
sessions = get_sessionmaker(pg_url)
def attempt(job_id):
    with sessions.begin() as session:
        claim = claim_job(session, uuid.UUID(job_id), "echo-worker", 60.0)
    result = run_attempt(claim, settings, sessions)
    return [result.outcome.value, result.failure.error_type if result.failure else None]

out["without_runner"] = attempt(first["id"])

def run_echo(spec, work, progress, ctx):
    progress.start_stage("write")
    (work / "echo.txt").write_text(spec.text)
    return Outputs(files=[("echo.txt", "report", work / "echo.txt")], result={"echo": spec.text})

runners.RUNNERS["echo"] = runners.Runner(stages=run_echo)
out["problems_with_runner"] = runners.runner_problems()
out["with_runner"] = attempt(second["id"])
with TestClient(create_app(settings, dispatcher=Recorder())) as client:
    job = client.get(f"/jobs/{second['id']}", headers=headers).json()
    out["job"] = [job["state"], job["progress"], job["result"]["echo"], sorted(a["name"] for a in job["artifacts"])]
    out["download"] = client.get(f"/jobs/{second['id']}/artifacts/echo.txt", headers=headers).text
    out["record"] = job["result"]["record"]["kind"]
print(json.dumps(out))
'''


@pytest.mark.slow
def test_a_kind_declared_in_a_test_is_picked_up_by_the_api_and_the_worker(pg_url, tmp_path):
    script = tmp_path / "echo_kind.py"
    script.write_text(textwrap.dedent(_ECHO))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env["PPRUNING_DATA_DIR"] = str(tmp_path / "default")
    done = subprocess.run([sys.executable, str(script), pg_url, str(tmp_path / "data")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    # the API: the union, the examples, the kind filter, the description, /methods, the checks, the listing
    assert out["union"][-1] == "EchoJobSpec" and len(out["union"]) == len(job_kinds()) + 1
    assert "echo" in out["examples"] and out["kind_filter"][-1] == "echo" and out["described"]
    assert "echo" in out["discovery"]
    assert "echo" in out["bad_kind"]
    assert out["checked"] == "hello" and out["listed"] == 2
    # the worker: loud without a runner (it does not start; the job fails naming the kind), runs with one
    assert out["problems"] == ["job kind 'echo' has no runner"]
    assert "job kind 'echo' has no runner" in out["worker_start"]
    assert out["without_runner"] == ["failed", "NoRunner"]
    assert out["problems_with_runner"] == []
    assert out["with_runner"] == ["succeeded", None]
    assert out["job"] == ["succeeded", 1.0, "hello", ["echo.txt", "record.json"]]
    assert out["download"] == "hello" and out["record"] == "echo"
