"""Fixtures of the browser tests: one real service (uvicorn in a thread, PostgreSQL, Redis, a real
Celery worker process) and one headless Chromium per module, a signed-in page per test.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/ensure-browser``), driven by
Playwright; ``playwright install`` is never run. Every page a test opens is watched for console
errors and uncaught exceptions, which fail the test unless it declared them expected.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.worker.harness import API_KEY, Backend, WorkerProcess, new_name

CHROMIUM = Path(os.environ.get("PPRUNING_TEST_CHROMIUM", "/usr/bin/chromium"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "custom"
#: Where the screenshots of every page go; PPRUNING_DASHBOARD_SHOTS names a folder to keep them
#: (the README's come from a run with PPRUNING_DASHBOARD_SHOTS=docs/dashboard).
SHOTS_ENV = "PPRUNING_DASHBOARD_SHOTS"


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A database of these tests alone: the worker's reaper re-sends every queued job it finds."""
    from tests.support.databases import migrated_database

    with migrated_database(pg_admin_url, "ppruning_dashboard_test") as url:
        yield url


@pytest.fixture(scope="module")
def dash_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def models(dash_root: Path) -> dict[str, Path]:
    """A tiny BERT (a prune job takes seconds) and a wide one (clustering and measuring take long enough to cancel)."""
    from tests.support.tiny_models import save_tiny_bert

    return {
        "tiny": save_tiny_bert(dash_root / "models" / "tiny-bert"),
        "wide": save_tiny_bert(dash_root / "models" / "wide-bert", num_hidden_layers=6, intermediate_size=2048),
    }


@pytest.fixture(scope="module")
def backend(pg_url: str, redis_url: str, dash_root: Path, models: dict[str, Path]) -> Backend:
    data = dash_root / "service"
    data.mkdir(exist_ok=True)
    return Backend("dashboard", pg_url, redis_url, data, [dash_root / "models", FIXTURES])


@pytest.fixture(scope="module")
def worker(backend: Backend) -> Iterator[WorkerProcess]:
    """Started here, waited for by :func:`base_url`: the worker starts while the API does."""
    proc = WorkerProcess(backend, new_name("dash"))
    try:
        yield proc
    finally:
        proc.kill()  # its database goes with the module: no job of it needs a clean end
        proc.stop()


@pytest.fixture(scope="module")
def base_url(backend: Backend, worker: WorkerProcess) -> Iterator[str]:
    from tests.worker.conftest import served_api

    with served_api(backend) as url:
        worker.wait_ready()
        yield url


@pytest.fixture(scope="module")
def api(base_url: str) -> Iterator[httpx.Client]:
    """The JSON API with the owner's bearer key: what a CI client sees, to check the pages against."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def other_key(pg_url: str) -> str:
    """A stored key of another owner."""
    from api.auth import new_secret
    from jobs.store import keys
    from jobs.store.session import session_scope

    secret = new_secret()
    with session_scope(pg_url) as session:
        keys.create_api_key(session, f"dash-other-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}", secret)
    return secret


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run .ci/ensure-browser (make test does), which installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get(SHOTS_ENV)
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Watch:
    """Console errors and uncaught exceptions of the pages of one browser context."""

    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


@pytest.fixture
def session_page(browser: Any, base_url: str) -> Iterator[Callable[..., tuple[Any, Watch]]]:
    """``open(key)``: a fresh context signed in with ``key`` through the form, and its error watch.
    Every context is closed after the test, which fails on any console error it did not expect."""
    opened: list[tuple[Any, Watch]] = []

    def open_(key: str = API_KEY, width: int = 1280) -> tuple[Any, Watch]:
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900})
        context.set_default_timeout(20_000)
        watch = Watch()
        context.on("page", watch.attach)
        page = context.new_page()
        opened.append((context, watch))
        page.goto("/ui/jobs")
        assert "/ui/login" in page.url
        page.fill("#api_key", key)
        page.click("#login-form button[type=submit]")
        return page, watch

    yield open_
    problems = []
    for context, watch in opened:
        problems += watch.unexpected()
        context.close()
    assert not problems, problems


@pytest.fixture
def page(session_page: Callable[..., tuple[Any, Watch]]) -> Any:
    """A page signed in as the worker tests' owner, on the jobs list."""
    page, _ = session_page()
    page.wait_for_url("**/ui/jobs")
    return page
