"""The artifact store's failures, classified: transient ones retried with backoff, refusals raised
at once, and no message naming a server path."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import storage_errors
from jobs.artifacts import StorageRefused, StorageUnavailable, open_store
from tests.support.readonly import ReadOnly


@pytest.fixture
def no_wait(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(storage_errors.time, "sleep", waits.append)
    return waits


def test_a_read_only_store_is_a_refusal_naming_the_key_not_the_path(tmp_path: Path, no_wait):
    root = tmp_path / "artifacts"
    store = open_store(root.as_uri())
    (tmp_path / "f").write_text("x")
    with ReadOnly(root):
        with pytest.raises(StorageRefused) as err:
            store.put_file(tmp_path / "f", "jobs/j1/attempt-1/report.json")
    message = str(err.value)
    assert "jobs/j1/attempt-1/report.json" in message and str(tmp_path) not in message, message
    assert no_wait == []  # a refusal is not retried here
    assert store.put_file(tmp_path / "f", "jobs/j1/attempt-1/report.json").size == 1  # writable again


def test_a_transient_failure_is_retried_with_backoff_then_succeeds(tmp_path: Path, no_wait, monkeypatch):
    store = open_store((tmp_path / "artifacts").as_uri())
    (tmp_path / "f").write_text("x")
    real, failures = store.fs.put_file, [ConnectionResetError(104, "Connection reset by peer")] * 2

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(store.fs, "put_file", flaky)
    assert store.put_file(tmp_path / "f", "jobs/j2/x").size == 1
    assert len(no_wait) == 2 and no_wait[1] > no_wait[0]  # backed off


def test_a_store_that_stays_unreachable_gives_up_as_unavailable(tmp_path: Path, no_wait, monkeypatch):
    store = open_store((tmp_path / "artifacts").as_uri())

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise TimeoutError(f"timed out talking to {tmp_path}")

    monkeypatch.setattr(store.fs, "exists", down)
    with pytest.raises(StorageUnavailable) as err:
        store.delete_prefix("jobs/j3")
    assert len(no_wait) == storage_errors.RETRIES - 1 and str(tmp_path) not in str(err.value)
