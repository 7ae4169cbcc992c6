"""Sweeps: one method at several targets as ordinary child jobs, one table and one plot; cancel cascades.

One real worker process with concurrency 1 runs the sweep and all of its children, so
these tests also show that a sweep cannot deadlock a single worker slot.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator

import pytest

from jobs.kinds import parse_spec
from jobs.store.models import Job
from tests.worker.conftest import FIXTURES, api_client
from tests.worker.harness import WorkerProcess, new_name, prune_spec, wait_for
from worker.sweep_runs import COLUMNS, table_row, write_outputs

MEASURE = {
    "batch_sizes": [1, 2],
    "repeats": 2,
    "warmup": 0,
    "seconds_per_batch": 1.0,
    "target_rel_half_width": 1.0,
    "max_fraction": None,
}  # the table shows measured speedups: no share of the short run caps them
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sweep_spec(model, targets: list[float], **overrides) -> dict:
    spec = prune_spec(model, FIXTURES, kind="sweep", measure=MEASURE)
    del spec["target"]
    spec["targets"] = {"flops_reduction": targets}
    spec.update(overrides)
    return spec


@pytest.fixture(scope="module")
def worker(service_backend) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(service_backend, new_name("sweeps"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def children_of(client, sweep_id: str) -> list[dict]:
    return client.http.get("/jobs", params={"parent": sweep_id, "limit": 100}).json()["items"]


@pytest.mark.service
@pytest.mark.slow
def test_a_sweep_of_three_targets_makes_three_child_jobs_a_table_and_a_plot(
    service_backend, worker, tiny_model, tmp_path
):
    with api_client(service_backend) as client:
        sweep = client.submit(sweep_spec(tiny_model, [0.2, 0.1, 0.15]))
        done = client.wait(sweep["id"], timeout_s=120, poll_s=0.3)
        assert done["state"] == "succeeded", (done.get("error"), worker.log()[-3000:])
        assert {a["name"] for a in done["artifacts"]} == {"sweep.json", "sweep.csv", "sweep.png"}

        children = children_of(client, sweep["id"])
        assert len(children) == 3 and all(c["parent_id"] == sweep["id"] for c in children)
        assert all(c["state"] == "succeeded" and c["kind"] == "prune" for c in children)
        listed = {j["id"] for j in client.http.get("/jobs", params={"limit": 100}).json()["items"]}
        assert {c["id"] for c in children} <= listed  # ordinary jobs in the owner's list

        client.download(sweep["id"], "sweep.json", tmp_path / "sweep.json")
        table = json.loads((tmp_path / "sweep.json").read_text())
        rows = table["rows"]
        assert [r["target"] for r in rows] == [0.1, 0.15, 0.2] and table["columns"] == list(COLUMNS)
        assert {r["job_id"] for r in rows} == {c["id"] for c in children}
        for row in rows:
            child = client.job(row["job_id"])
            report = child["result"]["report"]
            assert child["spec"]["target"]["flops_reduction"] == row["target"]
            assert row["flops_reduction"] == report["achieved"]["flops_reduction_pruned_part"]
            assert row["params"] == report["cost"]["after"]["params"]["total"]
            assert row["speedup"] == report["speed"]["speedup"] and row["error"] is None
            # a busy machine gives no headline number (noisy), never a wrong one
            assert row["speedup"] > 0 if row["speedup"] is not None else row["speedup_noisy"]
        assert rows[0]["flops_reduction"] < rows[-1]["flops_reduction"]
        assert done["result"]["failures"] == [] and done["metrics"]["sweep"] == {"children": 3.0, "succeeded": 3.0}

        client.download(sweep["id"], "sweep.csv", tmp_path / "sweep.csv")
        lines = list(csv.DictReader(io.StringIO((tmp_path / "sweep.csv").read_text())))
        assert [float(r["target"]) for r in lines] == [0.1, 0.15, 0.2]
        assert [r["job_id"] for r in lines] == [r["job_id"] for r in rows]

        client.download(sweep["id"], "sweep.png", tmp_path / "sweep.png")
        png = (tmp_path / "sweep.png").read_bytes()
        assert png.startswith(PNG_MAGIC)
        from matplotlib.image import imread

        assert imread(tmp_path / "sweep.png").shape[:2] == (420, 640)
        client.download(children[0]["id"], "report.json", tmp_path / "child_report.json")  # children download


@pytest.mark.service
@pytest.mark.slow
def test_cancelling_a_sweep_cancels_its_children(service_backend, worker, slow_model):
    params = {"max_instances": 48, "sampling_tokens": 300}
    with api_client(service_backend) as client:
        sweep = client.submit(sweep_spec(slow_model, [0.05, 0.1, 0.15], params=params))

        def running_child() -> dict | None:
            kids = children_of(client, sweep["id"])
            return next((k for k in kids if k["state"] == "running" and k["stage"] in ("collect", "cluster")), None)

        running = wait_for(running_child, 60, "a child job to be collecting")
        assert client.job(sweep["id"])["stage"] == "waiting"
        client.cancel(sweep["id"])
        kids = {k["id"]: k for k in children_of(client, sweep["id"])}
        queued = [k for k in kids.values() if k["id"] != running["id"]]
        assert all(k["state"] == "cancelled" for k in queued), queued  # queued children: at once
        assert kids[running["id"]]["cancel_requested"] is True  # the running one: by its flag

        done = client.wait(sweep["id"], timeout_s=30, poll_s=0.2)
        assert done["state"] == "cancelled" and done["artifacts"] == []
        assert all(k["state"] == "cancelled" for k in children_of(client, sweep["id"]))


def test_a_failed_child_is_a_row_of_the_table_with_its_error(tiny_model, tmp_path):
    spec = parse_spec(sweep_spec(tiny_model, [0.1, 0.2]))
    failed = Job(id=uuid.uuid4(), state="failed", kind="prune", spec=spec.child_specs()[1], result=None,
                 error_type="DataError", error_message="no rows", message="failed")  # fmt: skip
    row = table_row(failed, "flops_reduction")
    assert row["target"] == 0.2 and row["error"] == "DataError: no rows" and row["speedup"] is None
    files = dict((name, path) for name, _, path in write_outputs([row], spec, tmp_path))
    assert files["sweep.png"].read_bytes().startswith(PNG_MAGIC)
    assert "DataError: no rows" in files["sweep.csv"].read_text()
