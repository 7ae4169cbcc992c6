"""The artifact store: files of finished jobs under one root URI, ``file://`` or ``s3://``.

The worker writes (``put_file``, ``put_archive``); the API reads (``open_range``,
``stat``); removals (``delete_prefix``) go through the outbox of :mod:`jobs.store.removals`,
which retries them until the files are gone. Keys are ``jobs/<job_id>/<name>``, built by the
functions at the end of this module and nowhere else: an attempt's uploads under
``attempt-<n>/`` (:func:`attempt_prefix`), and the training state a restarted attempt
continues from under ``resume/`` (:func:`resume_key`), which belongs to the job rather than
to one attempt. The database holds each object's URI, size and sha256; the store only holds bytes.

Writes never expose a half-written object under its final name: on a file system the
bytes go to a temporary sibling that is renamed into place; on S3 an upload becomes
visible only when it completes, so the final key is written directly.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

CHUNK_BYTES = 1 << 20


class StorageError(Exception):
    """An object is missing, or a URI does not belong to this store."""


@dataclass(frozen=True)
class StoredObject:
    uri: str
    size: int
    sha256: str


def _check_key(key: str) -> str:
    """Keys are relative, '/'-separated, without '..' or empty segments."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid artifact key {key!r}")
    return key


def file_sha256(path: Path) -> tuple[int, str]:
    """Size and hex sha256 of a local file, read in chunks."""
    with path.open("rb") as fh:
        return os.fstat(fh.fileno()).st_size, hashlib.file_digest(fh, "sha256").hexdigest()


def pack_directory(local_dir: Path, dest: Path) -> None:
    """tar.gz of ``local_dir`` (entries under its own name), byte-for-byte reproducible.

    Sorted entries, zeroed times and owners: the same folder always gives the same
    sha256, so a re-run attempt does not produce a "different" checkpoint.
    """

    def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            base = local_dir.name
            tar.add(local_dir, arcname=base, recursive=False, filter=_normalise)
            for path in sorted(local_dir.rglob("*")):
                tar.add(
                    path, arcname=f"{base}/{path.relative_to(local_dir).as_posix()}", recursive=False, filter=_normalise
                )


class ArtifactStore:
    """One root URI; every method takes keys or URIs under that root."""

    def __init__(self, root_uri: str, **storage_options: Any) -> None:
        self.root_uri = root_uri.rstrip("/")
        self.fs, root_path = fsspec.core.url_to_fs(self.root_uri, **storage_options)
        self.root_path = root_path.rstrip("/")
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.is_local:
            self.fs.makedirs(self.root_path, exist_ok=True)

    # ------------------------------------------------------------------ addressing

    def uri_for(self, key: str) -> str:
        return f"{self.root_uri}/{_check_key(key)}"

    def _path_for_uri(self, uri: str) -> str:
        if not uri.startswith(self.root_uri + "/"):
            raise StorageError(f"{uri!r} is not under the artifact root {self.root_uri!r}")
        return f"{self.root_path}/{_check_key(uri[len(self.root_uri) + 1 :])}"

    # ------------------------------------------------------------------ writing

    def put_file(self, local: Path, key: str) -> StoredObject:
        """Copy ``local`` to ``key``; the object appears under its final name only when complete."""
        local = Path(local)
        target = f"{self.root_path}/{_check_key(key)}"
        size, sha = file_sha256(local)
        if self.is_local:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                self.fs.put_file(str(local), tmp)
                os.replace(tmp, target)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
        else:
            self.fs.put_file(str(local), target)
            self.fs.invalidate_cache(target)
        return StoredObject(uri=self.uri_for(key), size=size, sha256=sha)

    def put_archive(self, local_dir: Path, key: str) -> StoredObject:
        """Pack ``local_dir`` as tar.gz and store it under ``key``."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise StorageError(f"{local_dir} is not a folder")
        with tempfile.TemporaryDirectory(prefix="ppruning-archive-") as tmp:
            archive = Path(tmp) / "archive.tar.gz"
            pack_directory(local_dir, archive)
            return self.put_file(archive, key)

    # ------------------------------------------------------------------ reading

    def stat(self, uri: str) -> int:
        """Size in bytes of the object at ``uri``."""
        path = self._path_for_uri(uri)
        try:
            return int(self.fs.info(path)["size"])
        except FileNotFoundError:
            raise StorageError(f"artifact {uri!r} is missing from the store") from None

    def open_range(self, uri: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of the object (``end=None``: to the end), in chunks."""
        path = self._path_for_uri(uri)
        try:
            fh = self.fs.open(path, "rb")
        except FileNotFoundError:
            raise StorageError(f"artifact {uri!r} is missing from the store") from None
        return self._iter(fh, start, end)

    @staticmethod
    def _iter(fh: Any, start: int, end: int | None) -> Iterator[bytes]:
        with fh:
            fh.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                chunk = fh.read(CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    # ------------------------------------------------------------------ deleting

    def delete_prefix(self, key_prefix: str) -> None:
        """Remove every object under ``key_prefix`` (a folder-like key such as ``jobs/<id>``)."""
        path = f"{self.root_path}/{_check_key(key_prefix.rstrip('/'))}"
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache()

    def holds(self, key_prefix: str) -> bool:
        """True while anything is stored under ``key_prefix`` (what a removal checks it has finished)."""
        path = f"{self.root_path}/{_check_key(key_prefix.rstrip('/'))}"
        self.fs.invalidate_cache()
        return bool(self.fs.exists(path))


def open_store(root_uri: str, **storage_options: Any) -> ArtifactStore:
    """The store for ``root_uri``; ``storage_options`` go to fsspec (e.g. S3 ``client_kwargs``)."""
    if not root_uri.startswith(("file://", "s3://")):
        raise StorageError(f"artifact root must be a file:// or s3:// URI, not {root_uri!r}")
    return ArtifactStore(root_uri, **storage_options)


#: Every key of the store starts with this folder; nothing outside this module spells it.
JOBS_FOLDER = "jobs"


def job_prefix(job_id: object) -> str:
    """The store prefix of everything job ``job_id`` owns: its attempts' uploads and its resume state."""
    return _check_key(f"{JOBS_FOLDER}/{job_id}")


def job_key(job_id: object, name: str) -> str:
    """The store key of artifact ``name`` of job ``job_id``."""
    return _check_key(f"{job_prefix(job_id)}/{name}")


def attempt_prefix(job_id: object, attempt: int) -> str:
    """The staging prefix of attempt ``attempt`` of job ``job_id``: its uploads, before they are registered."""
    return job_key(job_id, f"attempt-{attempt}")


def attempt_key(job_id: object, attempt: int, name: str) -> str:
    """The store key of artifact ``name`` uploaded by attempt ``attempt`` of job ``job_id``."""
    return _check_key(f"{attempt_prefix(job_id, attempt)}/{name}")


#: The folder of a job's resume state: beside its attempts' folders, so no attempt's cleanup touches it.
RESUME_FOLDER = "resume"


def resume_key(job_id: object) -> str:
    """The store prefix of job ``job_id``'s resume state (deleted when the job ends)."""
    return job_key(job_id, RESUME_FOLDER)
