"""MLflow tracking of jobs, against a real ``mlflow server`` (SQLite backend, local artifact store).

The server runs in a process of its own on a free port for the module; a pipeline job run by
the worker's attempt (real PostgreSQL) must show up there as a finished run with its
parameters, stage times, metrics and fine-tuning curves, the report and model card as files,
and its final checkpoint registered as a model version. Skipped, with the reason, where the
``mlflow`` extra (or the Flask the test server runs on) is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobs.settings import Settings
from jobs.store.claims import claim_job
from tests.worker.conftest import FIXTURES, load
from tests.worker.harness import prune_spec
from worker.attempt import Outcome, run_attempt
from worker.tracking import curves, flatten, registered_name, wanted

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("flask") is None,
        reason="the mlflow extra is not installed (pip install -c constraints.txt '.[mlflow]'; the test server "
        "also needs flask)",
    ),
]

FINETUNE = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, "max_train_samples": 24, "max_eval_samples": 8}
SERVER_START_S = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with a SQLite store and a local artifact folder, served through the server itself."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer in {SERVER_START_S:.0f} s")
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server and its uvicorn worker
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _run(sessions, pg_url, tmp_path, job_id, roots, **settings):  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path, database_url=pg_url, artifact_root=(tmp_path / "a").as_uri(), device="cpu",
        allowed_model_roots=roots, **settings,
    )  # fmt: skip
    with sessions.begin() as session:
        claim = claim_job(session, job_id, "in-process", 60.0)
    return run_attempt(claim, settings, sessions)


def test_a_pipeline_job_is_a_run_with_metrics_curves_files_and_a_registered_model_version(
    mlflow_server, sessions, make_job, pg_url, tiny_model, tmp_path
) -> None:
    from mlflow.tracking import MlflowClient

    name = f"tiny-{uuid.uuid4().hex[:6]}"
    spec = prune_spec(tiny_model, FIXTURES, kind="pipeline", finetune=FINETUNE,
                      tracking={"experiment": name, "registered_model": name})  # fmt: skip
    spec["task"]["data_files"]["validation"] = str(FIXTURES / "reviews_validation.csv")
    job_id = make_job(spec, kind="pipeline")
    result = _run(sessions, pg_url, tmp_path, job_id, [tiny_model.parent, FIXTURES], mlflow_tracking_uri=mlflow_server)
    assert result.outcome is Outcome.SUCCEEDED, result.failure
    tracked = load(sessions, job_id).result["tracking"]["mlflow"]
    assert "error" not in tracked, tracked

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run = client.get_run(tracked["run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == client.get_experiment_by_name(name).experiment_id
    assert run.data.tags["ppruning.job_id"] == str(job_id) and run.data.tags["ppruning.kind"] == "pipeline"
    assert "pruned with `ppruning`" in run.data.tags["mlflow.note.content"]  # the model card as its description
    params, metrics = run.data.params, run.data.metrics
    assert params["method"] == "ppruning" and float(params["target.flops_reduction"]) == 0.2
    assert params["finetune.epochs"] == "2"
    assert 0.0 < metrics["prune.flops_reduction_whole_model"] < 1.0 and 0.0 <= metrics["validation.accuracy"] <= 1.0
    assert {"time_s.collect", "time_s.cluster", "time_s.train"} <= set(metrics)
    assert len(client.get_metric_history(run.info.run_id, "selection.accuracy")) == 2  # one score per epoch
    assert client.get_metric_history(run.info.run_id, "train.loss")  # the training curve, by step

    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.json", "README.md", "metrics.json", "trainer_log.jsonl", "model"} <= files
    model_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"config.json", "model.safetensors", "README.md", "pruning.json"} <= model_files

    version = client.get_model_version(name, tracked["model_version"])
    assert tracked["registered_model"] == name and version.run_id == run.info.run_id
    assert version.tags["ppruning.job_id"] == str(job_id)


def test_a_tracking_server_that_cannot_be_reached_does_not_fail_the_job(
    sessions, make_job, pg_url, tiny_model, tmp_path
) -> None:
    spec = prune_spec(tiny_model, FIXTURES, measure=False)
    job_id = make_job(spec)
    unreachable = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        result = _run(sessions, pg_url, tmp_path, job_id, [tiny_model.parent, FIXTURES],
                      mlflow_tracking_uri=unreachable)  # fmt: skip
    assert result.outcome is Outcome.SUCCEEDED, result.failure
    job = load(sessions, job_id)
    assert "MLflow tracking failed" in job.result["tracking"]["mlflow"]["error"]
    from sqlalchemy import select

    from jobs.store.models import JobEvent

    with sessions() as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
    assert any("MLflow tracking failed" in e.message and e.level == "warning" for e in events)


def test_which_jobs_are_tracked_and_what_they_are_called(tmp_path: Path) -> None:
    on = Settings(data_dir=tmp_path, mlflow_tracking_uri="http://mlflow:5000")
    assert wanted({}, on) and not wanted({"tracking": {"mlflow": False}}, on)
    assert not wanted({}, on.model_copy(update={"mlflow_track_all": False}))
    assert wanted({"tracking": {"mlflow": True}}, on.model_copy(update={"mlflow_track_all": False}))
    assert not wanted({"tracking": {"mlflow": True}}, Settings(data_dir=tmp_path))
    spec = {"model": {"id": "/models/tiny-bert/"}, "method": "smp", "task": {"name": "sst2"}}
    assert registered_name(spec) == "tiny-bert-smp-sst2"
    assert registered_name({**spec, "tracking": {"registered_model": "mine"}}) == "mine"
    assert flatten({"target": {"flops_reduction": 0.3}, "batch_sizes": [1, 8]}) == {
        "target.flops_reduction": "0.3", "batch_sizes": "[1, 8]",
    }  # fmt: skip
    log = tmp_path / "trainer_log.jsonl"
    log.write_text('{"step": 1, "epoch": 0.3, "loss": 0.7, "learning_rate": 0.001}\n'
                   '{"epoch": 1, "selection": {"accuracy": 0.5}}\n')  # fmt: skip
    assert curves(log) == [("train.loss", 0.7, 1), ("train.learning_rate", 0.001, 1), ("selection.accuracy", 0.5, 1)]
