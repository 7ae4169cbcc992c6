"""A sweep of an unstructured method is plotted and tabled against the remaining weights, not speedup.

In process, real PostgreSQL, a file artifact store and an SQLite broker nobody reads: the sweep's
attempt creates its children, each child runs as its own attempt, and the last one to finish
finalises the sweep, as the worker task does.
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
from tests.worker.harness import smp_spec
from worker.attempt import Outcome, run_attempt
from worker.sweep_runs import after_child, figure


def _attempt(sessions, settings: Settings, job_id: uuid.UUID) -> Outcome:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    assert claim is not None
    return run_attempt(claim, settings, sessions).outcome


def sweep_of(method: str, model: Path) -> dict:
    spec = smp_spec(model, FIXTURES, steps=4, kind="sweep", method=method)
    del spec["target"]
    spec["targets"] = {"params_reduction": [0.6, 0.3]}
    return spec


@pytest.mark.parametrize("method", ["smp", "magnitude-unstructured"])
def test_an_unstructured_sweep_reports_its_metric_against_the_remaining_weights(
    sessions, make_job, pg_url, bert_mlm, tmp_path, method
):
    settings = Settings(data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(),
                        device="cpu", allowed_model_roots=[bert_mlm.parent, FIXTURES])  # fmt: skip
    spec = sweep_of(method, bert_mlm)
    sweep_id = make_job(parse_spec(spec).model_dump(mode="json"), kind="sweep")
    assert _attempt(sessions, settings, sweep_id) is Outcome.WAITING
    with sessions() as session:
        kids = [child.id for child in sweeps.children(session, sweep_id)]
    for child in kids:
        assert _attempt(sessions, settings, child) is Outcome.SUCCEEDED
        after_child(sessions, settings, child)

    done = load(sessions, sweep_id)
    assert done.state == "succeeded", done.error_message
    assert done.result["x_axis"] == "remaining_weights"
    rows = done.result["table"]
    assert [r["target"] for r in rows] == [0.3, 0.6]
    assert [r["remaining_weights"] for r in rows] == pytest.approx([0.7, 0.4], abs=0.02)
    assert all(r["speedup"] is None and r["flops_reduction"] is None for r in rows)
    assert all(isinstance(r["train_loss"], float) for r in rows)  # the one quality figure without fine-tuning

    ax = figure(rows, parse_spec(done.spec)).axes[0]  # type: ignore[arg-type]
    assert ax.get_xlabel().startswith("remaining weights") and "speedup" not in ax.get_xlabel()
    assert ax.get_ylabel() == "final training loss of the method"
    assert list(ax.lines[0].get_xdata()) == [r["remaining_weights"] for r in rows]
