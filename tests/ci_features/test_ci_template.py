"""The CI templates (docs/ci): their one script, run with the client alone against the embedded service.

A pipeline whose gate passes leaves the checkpoint, its model card, the report and the job
for the CI to upload and exits 0; one whose gate rejects the model exits 4 and uploads no
checkpoint. The GitHub Actions workflow and the GitLab CI job must both call that script
and keep its output folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ppruning_client.cli_common import EXIT_REJECTED
from tests.worker.conftest import FIXTURES, served_api
from tests.worker.harness import API_KEY, WorkerProcess, new_name, prune_spec

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "ci" / "prune-gate.sh"
FINETUNE = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_train_samples": 24, "max_eval_samples": 8}
MEASURE = {"batch_sizes": [2], "repeats": 2, "warmup": 0, "seconds_per_batch": 3.0, "target_rel_half_width": 1.0}


def _gated(model: Path, accept: dict) -> dict:
    spec = prune_spec(model, FIXTURES, kind="pipeline", finetune=FINETUNE, measure=MEASURE, accept=accept)
    spec["task"]["data_files"]["validation"] = str(FIXTURES / "reviews_validation.csv")
    return spec


@pytest.fixture(scope="module")
def worker(service_backend) -> Iterator[WorkerProcess]:  # type: ignore[no-untyped-def]
    proc = WorkerProcess(service_backend, new_name("ci-template"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def _run_template(url: str, spec: dict, out: Path) -> subprocess.CompletedProcess[str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_file = out.parent / f"{out.name}.json"
    spec_file.write_text(json.dumps(spec))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PPRUNING_")},
        "PPRUNING_URL": url, "PPRUNING_API_KEY": API_KEY, "PPRUNING_OUT": str(out), "PPRUNING_TIMEOUT_S": "240",
        "PPRUNING_CLIENT": f"{sys.executable} -m ppruning_client", "PYTHONPATH": str(REPO),
    }  # fmt: skip
    return subprocess.run(["bash", str(SCRIPT), str(spec_file)], env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.service
@pytest.mark.slow
def test_the_ci_script_is_green_when_the_gate_passes_and_red_when_it_rejects(
    service_backend, worker, tiny_model, tmp_path
) -> None:
    with served_api(service_backend) as url:
        green = _run_template(url, _gated(tiny_model, {"max_metric_drop": 1.0, "dense_score": 0.5}), tmp_path / "ok")
        red = _run_template(
            url, _gated(tiny_model, {"max_metric_drop": 1.0, "dense_score": 0.5, "min_speedup": 100.0}), tmp_path / "no"
        )

    assert green.returncode == 0, green.stderr
    out = tmp_path / "ok"
    job = json.loads((out / "job.json").read_text())
    assert job["state"] == "succeeded" and job["result"]["verdict"] == "passed"
    assert (out / "job-id").read_text().strip() == job["id"]
    with tarfile.open(out / "model.tar.gz") as tar:
        assert any(name.endswith("config.json") for name in tar.getnames())
    assert "pruning-method-ppruning" in (out / "README.md").read_text()
    assert json.loads((out / "report.json").read_text())["method"] == "ppruning"
    assert "quality gate passed" in green.stderr and "Traceback" not in green.stderr

    assert red.returncode == EXIT_REJECTED, red.stderr
    out = tmp_path / "no"
    job = json.loads((out / "job.json").read_text())
    assert job["result"]["verdict"] == "rejected" and "speedup" in job["result"]["gate"]["reasons"][0]
    assert not (out / "model.tar.gz").exists() and (out / "report.json").is_file()
    assert "quality gate rejected" in red.stderr


def test_both_ci_templates_run_the_script_and_keep_its_output() -> None:
    github = yaml.safe_load((REPO / "docs" / "ci" / "github-actions.yml").read_text())
    steps = github["jobs"]["prune"]["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    assert "docs/ci/prune-gate.sh" in runs and "pip install" in runs and "ppruning_client" in runs
    upload = next(step for step in steps if str(step.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"].rstrip("/") == github["jobs"]["prune"]["env"]["PPRUNING_OUT"]
    assert "secrets.PPRUNING_API_KEY" in github["jobs"]["prune"]["env"]["PPRUNING_API_KEY"]

    gitlab = yaml.safe_load((REPO / "docs" / "ci" / "gitlab-ci.yml").read_text())["prune"]
    assert any("docs/ci/prune-gate.sh" in line for line in gitlab["script"])
    assert any("pip install" in line and "ppruning_client" in line for line in gitlab["before_script"])
    assert gitlab["artifacts"]["paths"] == [gitlab["variables"]["PPRUNING_OUT"] + "/"]
    assert gitlab["artifacts"]["when"] == "always"
