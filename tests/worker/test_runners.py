"""Each job kind runs its library calls and registers its artifacts (in process, real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.settings import Settings
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import prune_spec
from worker.attempt import Outcome, run_attempt

pytestmark = pytest.mark.slow

FINETUNE = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_train_samples": 24, "max_eval_samples": 8}


def _run(sessions, pg_url, tmp_path, job_id, roots):
    settings = Settings(
        data_dir=tmp_path,
        database_url=pg_url,
        artifact_root=(tmp_path / "a").as_uri(),
        device="cpu",
        allowed_model_roots=roots,
    )
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    return run_attempt(claim, settings, sessions)


def _with_validation(spec: dict) -> dict:
    spec["task"]["data_files"]["validation"] = str(FIXTURES / "reviews_validation.csv")
    return spec


def test_a_pipeline_job_prunes_then_finetunes_and_keeps_both_models(sessions, make_job, pg_url, tiny_model, tmp_path):
    spec = _with_validation(prune_spec(tiny_model, FIXTURES, kind="pipeline", finetune=FINETUNE))
    job_id = make_job(spec, kind="pipeline")
    result = _run(sessions, pg_url, tmp_path, job_id, [tiny_model.parent, FIXTURES])
    assert result.outcome is Outcome.SUCCEEDED, result.failure
    job = load(sessions, job_id)
    names = {a.name for a in job.artifacts}
    assert {"model.tar.gz", "pruned_model.tar.gz", "head_mask.pt", "report.json", "metrics.json", "README.md"} <= names
    card = next(a for a in job.artifacts if a.name == "README.md")  # the fine-tuned model's card, not the pruned one's
    from urllib.parse import urlparse

    assert "fine-tuned" in Path(urlparse(card.uri).path).read_text()
    assert "validation" in {m.split for m in job.metrics} and "prune" in {m.split for m in job.metrics}
    assert job.result["main_metric"] == "accuracy"


def test_a_finetune_job_from_a_finished_prune_job_fetches_its_model(sessions, make_job, pg_url, tiny_model, tmp_path):
    prune_id = make_job(_with_validation(prune_spec(tiny_model, FIXTURES)))
    assert _run(sessions, pg_url, tmp_path, prune_id, [tiny_model.parent, FIXTURES]).outcome is Outcome.SUCCEEDED
    spec = {"kind": "finetune", "from_job": str(prune_id), "task": prune_spec(tiny_model, FIXTURES)["task"], **FINETUNE}
    spec["task"]["data_files"]["validation"] = str(FIXTURES / "reviews_validation.csv")
    job_id = make_job(spec, kind="finetune")
    result = _run(sessions, pg_url, tmp_path, job_id, [tiny_model.parent, FIXTURES])
    assert result.outcome is Outcome.SUCCEEDED, result.failure
    job = load(sessions, job_id)
    assert {a.name for a in job.artifacts} >= {"model.tar.gz", "metrics.json"}
    assert job.result["metrics"]["validation"]["accuracy"] >= 0.0


@pytest.fixture(scope="module")
def tiny_opt(e2e_root):
    from tests.support.tiny_models import save_tiny_opt

    return save_tiny_opt(e2e_root / "models" / "tiny-opt")


def _registered_methods() -> list[str]:
    from ppruning import all_methods

    return list(all_methods())


@pytest.mark.parametrize("method", _registered_methods())
def test_a_prune_job_runs_on_opt_with_every_method(sessions, make_job, pg_url, tiny_opt, tmp_path, method):
    """OPT flattens its FFN input; every registered method's job must still run and store its declared files."""
    from ppruning import get_method

    declared = get_method(method)
    fields = declared.params_model.model_fields
    quick = {k: v for k, v in {"steps": 3, "train_batch_size": 4, "head": "new"}.items() if k in fields}
    target = "flops_reduction" if "flops" in declared.targets else "params_reduction"
    spec = prune_spec(tiny_opt, FIXTURES, method=method, target={target: 0.2},
                      params={"max_instances": 24, "sampling_tokens": 16, **quick})  # fmt: skip
    job_id = make_job(spec)
    result = _run(sessions, pg_url, tmp_path, job_id, [tiny_opt.parent, FIXTURES])
    if declared.model_types and "opt" not in declared.model_types:  # refused with a clear error, not a crash
        assert result.outcome is Outcome.FAILED and load(sessions, job_id).error_type == "UnsupportedModelError"
        return
    assert result.outcome is Outcome.SUCCEEDED, result.failure
    names = {a.name for a in load(sessions, job_id).artifacts}
    assert {"model.tar.gz", "report.json", *get_method(method).artifacts} <= names
