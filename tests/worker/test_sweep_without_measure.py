"""A sweep with ``measure: false`` still plots quality against speedup: the cost model's ideal one.

In process, real PostgreSQL, a file artifact store: the sweep's attempt creates its children,
each child runs as its own attempt, and the last one to finish finalises the sweep.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from jobs import sweeps
from jobs.kinds import parse_spec
from jobs.settings import Settings
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import prune_spec
from worker.attempt import Outcome, run_attempt
from worker.sweep_runs import after_child, figure


def _attempt(sessions, settings: Settings, job_id: uuid.UUID) -> Outcome:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    assert claim is not None
    return run_attempt(claim, settings, sessions).outcome


def test_an_unmeasured_sweep_plots_against_the_ideal_speedup(
    sessions, make_job, pg_url, tiny_bert_path: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(),
                        device="cpu", allowed_model_roots=[tiny_bert_path, FIXTURES])  # fmt: skip
    spec = prune_spec(tiny_bert_path, FIXTURES, kind="sweep", measure=False)
    spec["params"] = {"max_instances": 16, "sampling_tokens": 16, "lambda_val": 1.0}
    del spec["target"]
    spec["targets"] = {"flops_reduction": [0.2, 0.4]}
    sweep_id = make_job(parse_spec(spec).model_dump(mode="json"), kind="sweep")
    assert _attempt(sessions, settings, sweep_id) is Outcome.WAITING
    with sessions() as session:
        kids = [child.id for child in sweeps.children(session, sweep_id)]
    for child in kids:
        assert _attempt(sessions, settings, child) is Outcome.SUCCEEDED
        after_child(sessions, settings, child)

    done = load(sessions, sweep_id)
    assert done.state == "succeeded", done.error_message
    rows = done.result["table"]
    ideal = [r["ideal_speedup"] for r in rows]
    assert all(isinstance(x, float) and x > 1.0 for x in ideal) and ideal[1] > ideal[0], rows
    assert all(r["speedup"] is None for r in rows)
    axes = figure(rows, parse_spec(done.spec)).axes[0]
    assert "ideal speedup" in axes.get_xlabel()
    plotted = [list(line.get_xdata()) for line in axes.get_lines()]
    assert plotted and plotted[0] == ideal, plotted
