"""The artifact store on a local folder and on S3 (moto's server on loopback), same contract."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.artifacts import ArtifactStore, StorageError, job_key, open_store


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).create_bucket(Bucket="artifacts")
    yield endpoint
    server.stop()


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path: Path) -> ArtifactStore:  # type: ignore[no-untyped-def]
    if request.param == "file":
        return open_store((tmp_path / "root").as_uri())
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_store(
        f"s3://artifacts/{tmp_path.name}",
        key="test",
        secret="test",
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
    )


def test_put_file_returns_uri_size_and_sha256_and_reads_back_in_ranges(store, tmp_path):
    data = bytes(range(256)) * 8192 + b"tail"  # > 2 MiB: several chunks
    (tmp_path / "blob").write_bytes(data)
    obj = store.put_file(tmp_path / "blob", job_key("j1", "head_mask.pt"))
    assert obj.uri == f"{store.root_uri}/jobs/j1/head_mask.pt"
    assert (obj.size, obj.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert store.stat(obj.uri) == len(data)
    assert b"".join(store.open_range(obj.uri)) == data
    assert b"".join(store.open_range(obj.uri, 1_000_000, 1_000_010)) == data[1_000_000:1_000_010]
    assert b"".join(store.open_range(obj.uri, len(data) - 4)) == b"tail"


def test_an_archive_is_reproducible_and_holds_the_folder(store, tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"\1" * 1000)
    first = store.put_archive(folder, job_key("j2", "model.tar.gz"))
    (folder / "config.json").touch()  # a newer mtime must not change the bytes
    second = store.put_archive(folder, job_key("j2", "model-again.tar.gz"))
    assert first.sha256 == second.sha256 and first.size == second.size


def test_delete_prefix_removes_one_job_only(store, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    a = store.put_file(tmp_path / "f", job_key("ja", "f"))
    b = store.put_file(tmp_path / "f", job_key("jb", "f"))
    store.delete_prefix("jobs/ja")
    with pytest.raises(StorageError):
        store.stat(a.uri)
    assert store.stat(b.uri) == 1
    store.delete_prefix("jobs/never-written")  # nothing there: not an error


def test_keys_and_uris_cannot_leave_the_root(store, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    for key in ["../escape", "/abs", "jobs//x", "jobs/./x", ""]:
        with pytest.raises(StorageError):
            store.put_file(tmp_path / "f", key)
    with pytest.raises(StorageError):
        list(store.open_range("file:///etc/passwd"))
    with pytest.raises(StorageError):
        list(store.open_range(f"{store.root_uri}/../outside"))


def test_a_local_write_leaves_no_temporary_file(tmp_path):
    store = open_store((tmp_path / "root").as_uri())
    (tmp_path / "f").write_bytes(b"abc")
    store.put_file(tmp_path / "f", "jobs/j/f")
    assert sorted(p.name for p in (tmp_path / "root" / "jobs" / "j").iterdir()) == ["f"]


def test_only_file_and_s3_roots_are_accepted():
    with pytest.raises(StorageError):
        open_store("ftp://host/root")
