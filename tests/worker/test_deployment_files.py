"""The Docker deployment, checked as far as this machine can without a Docker engine."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_migrations_once_before_the_api_and_the_workers():
    services = _compose()["services"]
    assert {"postgres", "redis", "migrations", "api", "worker"} <= set(services)
    assert services["migrations"]["command"] == ["ppruning", "db", "upgrade"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrations"]["condition"] == "service_completed_successfully"
    assert services["migrations"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck_and_the_worker_reserves_gpus():
    services = _compose()["services"]
    for name in ("postgres", "redis", "api", "worker"):
        assert services[name]["healthcheck"]["test"], name
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_api_and_worker_share_the_artifact_volume_and_the_hf_cache():
    services = _compose()["services"]
    for name in ("api", "worker"):
        mounts = services[name]["volumes"]
        assert "artifacts:/artifacts" in mounts and "hf-cache:/cache/huggingface" in mounts
        assert services[name]["environment"]["PPRUNING_BROKER_URL"].startswith("redis://")


def test_worker_image_is_cuda_based_with_the_cuda_torch_build():
    text = (REPO / "docker" / "worker.Dockerfile").read_text()
    assert "nvidia/cuda:" in text and "download.pytorch.org/whl/cu" in text
    assert '"ppruning", "worker"' in text
    api = (REPO / "docker" / "api.Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu" in api and "HEALTHCHECK" in api


def test_images_install_the_service_and_exporter_extras_at_the_constrained_versions():
    for name in ("api", "worker"):
        text = (REPO / "docker" / f"{name}.Dockerfile").read_text()
        assert "constraints.txt" in text.split("RUN pip install -c")[0], name  # copied before it is used
        extras = "service,export,mlflow" if name == "worker" else "service,export"  # workers log to MLflow
        assert f'pip install -c constraints.txt -e ".[{extras}]"' in text, name
