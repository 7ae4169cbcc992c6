"""PruneNet learns once and prunes at any ratio, as jobs: a sweep trains its policy in its first child and the
other children reuse it; a prune names a trained policy (an allowed file, or from_job) and only slices.

In process, real PostgreSQL, a file artifact store and an SQLite broker nobody reads, as the sweep tests.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jobs import sweeps
from jobs.kinds import parse_spec
from jobs.settings import Settings
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from worker.attempt import Outcome, run_attempt
from worker.sweep_runs import after_child, start_sweep  # noqa: F401 - the sweep's attempt runs start_sweep


@pytest.fixture(scope="module")
def llama(e2e_root: Path) -> Path:
    from tests.support.tiny_models import save_tiny_llama

    return save_tiny_llama(e2e_root / "models" / "tiny-llama")


def _attempt(sessions, settings: Settings, job_id: uuid.UUID) -> Outcome:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    assert claim is not None
    return run_attempt(claim, settings, sessions).outcome


def _settings(tmp_path: Path, pg_url: str, *roots: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(), device="cpu",
                    allowed_model_roots=[*roots, FIXTURES])  # fmt: skip


def _spec(model: Path, kind: str = "prune", **fields) -> dict:
    spec = {
        "kind": kind,
        "model": {"id": str(model)},
        "task": {"name": "causal-lm", "data_files": {"train": str(FIXTURES / "corpus_train.txt")}},
        "method": "prunenet",
        "params": {"num_episodes": 3},
        "device": "cpu",
        "measure": False,
        "seed": 11,
        **fields,
    }
    if kind == "prune" and "target" not in spec:
        spec["target"] = {"params_reduction": 0.2}
    return parse_spec(spec).model_dump(mode="json")


def _children(sessions, sweep_id: uuid.UUID) -> list:  # type: ignore[no-untyped-def]
    with sessions() as session:
        return [(c.id, c.spec) for c in sweeps.children(session, sweep_id)]


def test_a_three_point_sweep_trains_the_policy_once_and_reuses_it(sessions, make_job, pg_url, llama, tmp_path):
    settings = _settings(tmp_path, pg_url, llama.parent)
    sweep_id = make_job(_spec(llama, "sweep", targets={"params_reduction": [0.1, 0.2, 0.3]}), kind="sweep")
    assert _attempt(sessions, settings, sweep_id) is Outcome.WAITING
    first = _children(sessions, sweep_id)
    assert len(first) == 1 and first[0][1]["target"]["params_reduction"] == 0.1 and first[0][1]["policy"] is None
    assert _attempt(sessions, settings, first[0][0]) is Outcome.SUCCEEDED
    after_child(sessions, settings, first[0][0])

    kids = _children(sessions, sweep_id)
    assert len(kids) == 3
    others = [spec for job_id, spec in kids if job_id != first[0][0]]
    assert all(spec["policy"] == {"path": None, "from_job": str(first[0][0])} for spec in others)
    for job_id, _ in kids[1:]:
        assert _attempt(sessions, settings, job_id) is Outcome.SUCCEEDED
        after_child(sessions, settings, job_id)

    done = load(sessions, sweep_id)
    assert done.state == "succeeded", done.error_message
    assert [r["target"] for r in done.result["table"]] == [0.1, 0.2, 0.3]
    policies = {}
    for job_id, _ in kids:
        child = load(sessions, job_id)
        details = child.result["report"]["details"]["prunenet"]
        policies[child.spec["target"]["params_reduction"]] = details["policy"]
        assert "policy.pt" in {a.name for a in child.artifacts}
        if details["policy"] == "reused":
            assert child.result["prune_policy"] == {"from_job": str(first[0][0])}
            assert (
                details["best_episode"]
                == load(sessions, first[0][0]).result["report"]["details"]["prunenet"]["best_episode"]
            )
    assert policies == {0.1: "trained", 0.2: "reused", 0.3: "reused"}


def test_a_sweep_told_not_to_reuse_creates_every_child_at_once(sessions, make_job, pg_url, llama, tmp_path):
    settings = _settings(tmp_path, pg_url, llama.parent)
    spec = _spec(llama, "sweep", targets={"params_reduction": [0.1, 0.2, 0.3]}, reuse_policy=False)
    sweep_id = make_job(spec, kind="sweep")
    assert _attempt(sessions, settings, sweep_id) is Outcome.WAITING
    kids = _children(sessions, sweep_id)
    assert len(kids) == 3 and all(s["policy"] is None for _, s in kids)


def test_a_prune_reuses_an_allowed_policy_file(sessions, make_job, pg_url, llama, tmp_path):
    from jobs.specs import PruneJobSpec
    from ppruning import prune

    trained = prune(PruneJobSpec.model_validate(_spec(llama)).prune_config(), llama.parent / "trained")
    settings = _settings(tmp_path, pg_url, llama.parent)
    job_id = make_job(_spec(llama, policy={"path": str(trained.output_dir / "policy.pt")}))
    assert _attempt(sessions, settings, job_id) is Outcome.SUCCEEDED
    details = load(sessions, job_id).result["report"]["details"]["prunenet"]
    assert details["policy"] == "reused"
    assert details["applied_total_reward"] == pytest.approx(
        trained.report["details"]["prunenet"]["applied_total_reward"]
    )
