"""The CI client installed alone (``pip install ./ppruning_client``, no torch), against the embedded service.

What a CI runner does: a fresh virtualenv, the client distribution only, then submit a
job, follow it to the end over the event stream and download an artifact, with the
service running in the embedded mode (SQLite + kombu's SQLAlchemy broker) and a real
worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from jobs.store.migrate import upgrade
from tests.worker.conftest import FIXTURES, served_api
from tests.worker.harness import API_KEY, Backend, prune_spec

pytestmark = [pytest.mark.service, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with ``pip install ./ppruning_client`` and nothing else (built from a copy of the folder)."""
    root = tmp_path_factory.mktemp("client-venv")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    source = shutil.copytree(REPO / "ppruning_client", root / "src", ignore=skip)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        check=True,
        env=env,
        timeout=600,
    )
    return env_dir


def _run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PPRUNING_API_KEY")}
    return subprocess.run(
        [str(env_dir / "bin" / "ppruning-client"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_client_installs_alone_without_torch_or_the_service(client_venv: Path, tmp_path: Path) -> None:
    python = client_venv / "bin" / "python"
    probe = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "['ppruning_client', 'httpx', 'torch', 'transformers', 'ppruning', 'jobs', 'fastapi', 'sqlalchemy', "
        "'celery']}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    found = json.loads(subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                                      text=True, check=True).stdout)  # fmt: skip
    assert found == {
        "ppruning_client": True, "httpx": True, "torch": False, "transformers": False, "ppruning": False, "jobs": False,
        "fastapi": False, "sqlalchemy": False, "celery": False,
    }  # fmt: skip
    version = _run(client_venv, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("ppruning-client ")
    # the full command set, as the console script and as ``python -m ppruning_client``, and the SDK
    for command in ([str(client_venv / "bin" / "ppruning-client")], [str(python), "-m", "ppruning_client"]):
        shown = subprocess.run([*command, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
        for name in ("submit", "status", "wait", "download", "cancel", "list", "events", "artifacts", "delete"):
            assert name in shown.stdout, (command, name)
    sdk = "from ppruning_client import Client; print(len(Client.OPERATIONS))"
    operations = subprocess.run([str(python), "-c", sdk], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert operations.returncode == 0 and int(operations.stdout) >= 14, operations.stderr


def test_the_standalone_client_submits_follows_and_downloads_from_the_embedded_service(
    client_venv: Path, e2e_root: Path, spawn, tiny_model: Path, tmp_path: Path
) -> None:
    data = e2e_root / "standalone-client"
    data.mkdir(exist_ok=True)
    backend = Backend(
        "standalone-client", f"sqlite:///{data / 'ppruning.db'}", f"sqla+sqlite:///{data / 'broker.db'}", data,
        [e2e_root / "models", FIXTURES],
    )  # fmt: skip
    upgrade(backend.database_url)
    spawn(backend)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(prune_spec(tiny_model, FIXTURES)))
    with served_api(backend) as url:
        auth = ["--url", url, "--api-key", API_KEY]
        submitted = _run(client_venv, "submit", str(spec), "-q", *auth, cwd=tmp_path)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()

        followed = _run(client_venv, "wait", job_id, "--timeout", "240", *auth, cwd=tmp_path)
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout.startswith(f"job {job_id} succeeded  kind=prune")
        assert "collect" in followed.stderr  # the live stream showed the stages as they ran

        fetched = _run(client_venv, "download", job_id, "report.json", "-o", str(tmp_path / "report.json"), *auth,
                       cwd=tmp_path)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        assert json.loads((tmp_path / "report.json").read_text())["achieved"]

        missing = _run(client_venv, "status", "00000000-0000-0000-0000-000000000000", *auth, cwd=tmp_path)
        assert missing.returncode == 2 and "Traceback" not in missing.stderr

        # The whole command set is there without torch.
        listed = _run(client_venv, "list", "--state", "succeeded", "--json", *auth, cwd=tmp_path)
        assert listed.returncode == 0 and [j["id"] for j in json.loads(listed.stdout)["items"]] == [job_id]
        artifacts = _run(client_venv, "artifacts", job_id, "--json", *auth, cwd=tmp_path)
        assert "report.json" in [a["name"] for a in json.loads(artifacts.stdout)]
        events = _run(client_venv, "events", job_id, *auth, cwd=tmp_path)
        assert events.returncode == 0 and "[collect]" in events.stdout
        assert _run(client_venv, "cancel", job_id, *auth, cwd=tmp_path).returncode == 2  # finished
        assert _run(client_venv, "delete", job_id, *auth, cwd=tmp_path).returncode == 0

    down = _run(client_venv, "status", job_id, "--url", url, "--api-key", API_KEY, cwd=tmp_path)
    assert down.returncode == 5 and f"cannot reach the service at {url}" in down.stderr
