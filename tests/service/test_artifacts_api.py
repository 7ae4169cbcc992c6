"""Downloads: streamed, with length and digest, one byte range (206) or 416, archives of the checkpoint."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import uuid

import pytest

from api.errors import RangeNotSatisfiable
from api.routes.artifacts import parse_range
from jobs.artifacts import job_key, job_prefix, open_store
from jobs.store import repository
from jobs.store.session import session_scope

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


@pytest.fixture
def stored_job(client, auth, prune_spec, pg_url, service_settings, tmp_path, tiny_bert_path):  # type: ignore[no-untyped-def]
    """A job with a binary mask and the tiny checkpoint as an archive, written through the store."""
    job_id = client.post("/jobs", json=prune_spec, headers=auth).json()["id"]
    store = open_store(service_settings.artifact_root)
    (tmp_path / "head_mask.pt").write_bytes(PAYLOAD)
    objects = {
        "head_mask.pt": ("mask", store.put_file(tmp_path / "head_mask.pt", job_key(job_id, "head_mask.pt"))),
        "model.tar.gz": ("model", store.put_archive(tiny_bert_path, job_key(job_id, "model.tar.gz"))),
    }
    with session_scope(pg_url) as session:
        for name, (kind, obj) in objects.items():
            repository.add_artifact(
                session, uuid.UUID(job_id), name, kind, uri=obj.uri, size=obj.size, sha256=obj.sha256,
                meta={"record": {"artifact": "record.json", "seed": 3407}},
            )  # fmt: skip
    return job_id


def test_a_download_streams_the_whole_object_with_length_and_digest(client, auth, stored_job):
    r = client.get(f"/jobs/{stored_job}/artifacts/head_mask.pt", headers=auth)
    assert r.status_code == 200 and r.content == PAYLOAD
    digest = hashlib.sha256(PAYLOAD)
    assert r.headers["Content-Length"] == str(len(PAYLOAD))
    assert r.headers["X-Content-SHA256"] == digest.hexdigest()
    b64 = base64.b64encode(digest.digest()).decode()
    assert r.headers["Repr-Digest"] == f"sha-256=:{b64}:" and r.headers["Digest"] == f"SHA-256={b64}"
    assert r.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=10240-", None, None),
        ("bytes=10000-", 10000, 10240),
        ("bytes=-16", 10224, 10240),
        ("bytes=0-999999", 0, 10240),
    ],
)
def test_a_single_range_is_206_with_content_range(client, auth, stored_job, header, start, end):
    r = client.get(f"/jobs/{stored_job}/artifacts/head_mask.pt", headers={**auth, "Range": header})
    if start is None:
        assert r.status_code == 416
        assert r.headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"
        assert r.json()["error"]["type"] == "range_not_satisfiable"
        return
    assert r.status_code == 206 and r.content == PAYLOAD[start:end]
    assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(PAYLOAD)}"
    assert r.headers["Content-Length"] == str(end - start)
    assert r.headers["X-Content-SHA256"] == hashlib.sha256(PAYLOAD).hexdigest()  # of the whole object


def test_a_resumed_download_reassembles_the_object(client, auth, stored_job):
    url = f"/jobs/{stored_job}/artifacts/head_mask.pt"
    head = client.get(url, headers={**auth, "Range": "bytes=0-4095"}).content
    tail = client.get(url, headers={**auth, "Range": f"bytes={len(head)}-"}).content
    assert hashlib.sha256(head + tail).hexdigest() == client.head(url, headers=auth).headers["X-Content-SHA256"]


def test_bad_and_multiple_ranges(client, auth, stored_job):
    url = f"/jobs/{stored_job}/artifacts/head_mask.pt"
    for header in ["bytes=abc", "bytes=-", "bytes=20-10", "bytes=-0"]:
        assert client.get(url, headers={**auth, "Range": header}).status_code == 416, header
    multi = client.get(url, headers={**auth, "Range": "bytes=0-1,5-6"})
    assert multi.status_code == 200 and multi.content == PAYLOAD  # several ranges: the whole object
    other_unit = client.get(url, headers={**auth, "Range": "items=0-1"})
    assert other_unit.status_code == 200


def test_head_gives_the_headers_without_the_body(client, auth, stored_job):
    r = client.head(f"/jobs/{stored_job}/artifacts/head_mask.pt", headers=auth)
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == str(len(PAYLOAD))


def test_the_checkpoint_archive_unpacks_to_the_model_folder(client, auth, stored_job, tiny_bert_path):
    r = client.get(f"/jobs/{stored_job}/artifacts/model.tar.gz", headers=auth)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/gzip"
    assert hashlib.sha256(r.content).hexdigest() == r.headers["X-Content-SHA256"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = set(tar.getnames())
    base = tiny_bert_path.name
    expected = {f"{base}/{p.relative_to(tiny_bert_path).as_posix()}" for p in tiny_bert_path.rglob("*")}
    assert f"{base}/config.json" in names and names == expected | {base}


def test_the_artifact_list_and_the_job_agree(client, auth, stored_job):
    listed = client.get(f"/jobs/{stored_job}/artifacts", headers=auth).json()
    in_job = client.get(f"/jobs/{stored_job}", headers=auth).json()["artifacts"]
    assert [a["name"] for a in listed] == ["head_mask.pt", "model.tar.gz"] and listed == in_job
    assert all(a["meta"]["record"]["seed"] == 3407 for a in listed)


def test_unknown_or_vanished_artifacts_are_404(client, auth, stored_job, service_settings):
    assert client.get(f"/jobs/{stored_job}/artifacts/nope.bin", headers=auth).status_code == 404
    open_store(service_settings.artifact_root).delete_prefix(job_prefix(stored_job))
    r = client.get(f"/jobs/{stored_job}/artifacts/head_mask.pt", headers=auth)
    assert r.status_code == 404 and "missing from the store" in r.json()["error"]["message"]


def test_parse_range_follows_rfc_9110():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 1)
    assert parse_range("bytes=-100", 10) == (0, 10)
    assert parse_range("bytes=3-", 10) == (3, 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-1", 0)
