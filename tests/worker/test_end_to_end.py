"""Jobs through the real API, a real Celery worker process, real PostgreSQL and Redis
(and, for the embedded mode, SQLite and kombu's SQLAlchemy transport instead)."""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path

import pytest
import redis
import torch

from tests.worker.conftest import FIXTURES, api_client, load
from tests.worker.harness import Backend, prune_spec, wait_for

pytestmark = [pytest.mark.service, pytest.mark.slow]

PRUNE_ARTIFACTS = {
    "head_mask.pt",
    "neuron_mask.pt",
    "masks.safetensors",
    "compensation.safetensors",
    "model.tar.gz",
    "report.json",
    "record.json",
    "README.md",
}


def slow_spec(model: Path) -> dict:
    """About 8 s of collection and clustering on two busy cores: time to act mid-job."""
    params = {"max_instances": 48, "sampling_tokens": 300}
    return prune_spec(model, FIXTURES, params=params, target={"flops_reduction": 0.1})


def stored_files(backend: Backend, job_id: str) -> list[str]:
    root = backend.data_dir / "artifacts" / "jobs" / job_id
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_pruned_equals_masked(client, job_id: str, source_model: Path, dest: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    from ppruning import load_pruned
    from ppruning.arch import get_adapter
    from ppruning.model.mask_hooks import apply_masks
    from ppruning.recovery.compensation import apply_refit, load_refit
    from ppruning.units.masks import load_masks

    for name in ("model.tar.gz", "head_mask.pt", "neuron_mask.pt", "compensation.safetensors"):
        client.download(job_id, name, dest / name)
    with tarfile.open(dest / "model.tar.gz") as tar:
        tar.extractall(dest / "unpacked", filter="data")
    (model_dir,) = [p for p in (dest / "unpacked").iterdir() if p.is_dir()]
    pruned = load_pruned(model_dir, head="base").eval()
    full = AutoModel.from_pretrained(source_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(["the movie was great", "a boring plot with a bad actor"], padding=True, return_tensors="pt")
    masks = load_masks(dest)
    assert masks.head_mask.sum() < masks.head_mask.numel() or masks.neuron_mask.sum() < masks.neuron_mask.numel()
    apply_refit(full, get_adapter(full), masks, load_refit(dest))  # compensation's refit (on by default)
    with torch.no_grad(), apply_masks(full, masks):
        expected = full(**batch).last_hidden_state
    with torch.no_grad():
        got = pruned(**batch).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def run_prune_end_to_end(backend: Backend, spawn, model: Path, tmp_path: Path) -> None:
    spawn(backend)
    with api_client(backend) as client:
        job = client.submit(prune_spec(model, FIXTURES))
        seen: list[float] = []
        done = client.wait(job["id"], timeout_s=120, poll_s=0.3, on_update=lambda j: seen.append(j["progress"]))
        assert done["state"] == "succeeded", done.get("error")
        assert done["attempts"] == 1 and done["progress"] == 1.0
        assert seen == sorted(seen)
        assert {a["name"] for a in done["artifacts"]} == PRUNE_ARTIFACTS
        assert 0.15 < done["metrics"]["prune"]["flops_reduction_pruned_part"] < 0.3
        assert done["result"]["report"]["achieved"]
        assert stored_files(backend, job["id"]) == sorted(f"attempt-1/{n}" for n in PRUNE_ARTIFACTS)
        assert_pruned_equals_masked(client, job["id"], model, tmp_path)


def test_prune_job_runs_end_to_end_on_postgres_and_redis(service_backend, spawn, tiny_model, tmp_path):
    run_prune_end_to_end(service_backend, spawn, tiny_model, tmp_path)


def test_prune_job_runs_end_to_end_in_the_embedded_mode(e2e_root, spawn, tiny_model, tmp_path):
    from jobs.store.migrate import upgrade

    data = e2e_root / "embedded"
    data.mkdir(exist_ok=True)
    backend = Backend(
        "embedded", f"sqlite:///{data / 'ppruning.db'}", f"sqla+sqlite:///{data / 'broker.db'}", data,
        [e2e_root / "models", FIXTURES],
    )  # fmt: skip
    upgrade(backend.database_url)
    run_prune_end_to_end(backend, spawn, tiny_model, tmp_path)


def test_cancelling_a_running_job_stops_it_within_seconds_and_keeps_no_artifacts(
    service_backend, spawn, slow_model, sessions
):
    spawn(service_backend)
    with api_client(service_backend) as client:
        job = client.submit(slow_spec(slow_model))
        wait_for(lambda: client.job(job["id"])["stage"] in ("collect", "cluster"), 60, "the job to start collecting")
        client.cancel(job["id"])
        done = client.wait(job["id"], timeout_s=10, poll_s=0.2)
    assert done["state"] == "cancelled"
    assert done["artifacts"] == [] and stored_files(service_backend, job["id"]) == []


def test_a_worker_killed_mid_job_is_replaced_and_the_job_succeeds_once(service_backend, spawn, slow_model):
    first = spawn(service_backend)
    with api_client(service_backend) as client:
        job = client.submit(slow_spec(slow_model))
        wait_for(lambda: client.job(job["id"])["stage"] in ("collect", "cluster"), 60, "the job to be mid-way")
        first.kill()
        spawn(service_backend)
        done = client.wait(job["id"], timeout_s=150, poll_s=0.5)
        assert done["state"] == "succeeded", done.get("error")
        assert done["attempts"] == 2
        assert {a["name"] for a in done["artifacts"]} == PRUNE_ARTIFACTS
        assert stored_files(service_backend, job["id"]) == sorted(f"attempt-2/{n}" for n in PRUNE_ARTIFACTS)


def test_a_queued_job_whose_message_was_lost_is_resent_by_the_reaper(service_backend, spawn, tiny_model, sessions):
    with api_client(service_backend) as client:
        job = client.submit(prune_spec(tiny_model, FIXTURES))
        redis.Redis.from_url(service_backend.broker_url).flushdb()  # a Redis restart without persistence
        spawn(service_backend)
        done = client.wait(job["id"], timeout_s=90, poll_s=0.5)
    assert done["state"] == "succeeded", done.get("error")
    assert load(sessions, uuid.UUID(job["id"])).attempts == 1
