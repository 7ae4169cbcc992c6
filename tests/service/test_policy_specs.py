"""A trained PruneNet policy in a job spec: named in 'policy' (an allowed file, or from_job of a finished job of
the method), only for a method that reuses one, never under params; each refusal names its field."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs.kinds import parse_spec
from jobs.store import repository
from jobs.store.session import session_scope
from jobs.store.states import JobState


@pytest.fixture(scope="module")
def llama(model_root: Path, tiny_llama_path: Path) -> Path:
    folder = model_root / "llama"
    if not folder.exists():
        shutil.copytree(tiny_llama_path, folder)
    return folder


def _prunenet(model: Path | str, kind: str = "prune", **fields: Any) -> dict:
    spec = {"kind": kind, "model": {"id": str(model)}, "task": {"name": "wikitext-2"}, "method": "prunenet",
            "params": {"num_episodes": 2}, **fields}  # fmt: skip
    if kind == "sweep":
        spec["targets"] = {"params_reduction": [0.1, 0.2, 0.3]}
    else:
        spec["target"] = {"params_reduction": 0.2}
    return spec


def _finished(pg_url: str, owner: str, method: str) -> str:
    with session_scope(pg_url) as session:
        job, _ = repository.create_job(session, owner=owner, kind="prune", spec={"kind": "prune", "method": method})
        for step in (JobState.RUNNING, JobState.SUCCEEDED):
            repository.transition(session, job, step)
        return str(job.id)


def test_a_policy_is_for_a_method_that_reuses_one_and_is_never_a_param() -> None:
    with pytest.raises(Exception, match="learns no policy") as err:
        parse_spec({**_prunenet("org/m"), "method": "ppruning", "params": {}, "policy": {"path": "/x/policy.pt"}})
    assert getattr(err.value, "field", None) == "policy" or "policy" in str(err.value)
    with pytest.raises(Exception, match="name the trained policy in 'policy'"):
        parse_spec(_prunenet("org/m", params={"policy": "/x/policy.pt"}))
    with pytest.raises(Exception, match="exactly one of 'path' or 'from_job'"):
        parse_spec(_prunenet("org/m", policy={}))
    sweep = parse_spec(_prunenet("org/m", "sweep"))
    assert (
        sweep.trains_policy_once and not parse_spec(_prunenet("org/m", "sweep", reuse_policy=False)).trains_policy_once
    )
    given = parse_spec(_prunenet("org/m", "sweep", policy={"path": "/x/policy.pt"}))
    assert not given.trains_policy_once
    assert all(child.policy is not None and child.policy.path == "/x/policy.pt" for child in given.child_models())


@pytest.mark.parametrize("kind", ["prune", "sweep"])
def test_a_policy_file_is_checked_against_the_allowed_roots(client, auth, model_root, llama, kind, tmp_path):
    from ppruning.methods.prunenet.policy_file import policy_bytes

    outside = tmp_path / "policy.pt"
    outside.write_bytes(b"x")
    r = client.post("/jobs", json=_prunenet(llama, kind, policy={"path": str(outside)}), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "policy.path", r.text
    r = client.post("/jobs", json=_prunenet(llama, kind, policy={"path": str(model_root / "none.pt")}), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "policy.path", r.text

    import torch

    inside = model_root / "policies" / "policy.pt"
    inside.parent.mkdir(exist_ok=True)
    state = {"project.weight": torch.zeros(64, 32), "project.bias": torch.zeros(64), "rho": torch.zeros(64, 1)}
    inside.write_bytes(policy_bytes(state, hidden_size=32, ffn_size=64, episode=0, total_reward=1.0,
                                    neurons_kept_per_layer=50, model=None))  # fmt: skip
    r = client.post("/jobs", json=_prunenet(llama, kind, policy={"path": str(inside)}), headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["policy"]["path"] == str(inside.resolve())


def test_a_policy_from_job_is_a_finished_job_of_the_same_method(client, auth, llama, pg_url, owner):
    other = _finished(pg_url, owner, "ppruning")
    r = client.post("/jobs", json=_prunenet(llama, policy={"from_job": other}), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "policy.from_job", r.text
    assert "ran method 'ppruning'" in r.text
    same = _finished(pg_url, owner, "prunenet")
    r = client.post("/jobs", json=_prunenet(llama, policy={"from_job": same}), headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["policy"]["from_job"] == same
