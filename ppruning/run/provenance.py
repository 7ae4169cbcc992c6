"""The reproducibility record of a run: what exactly went in, so the same masks can be made again.

A record holds the validated config with every default filled in (``spec``: run it
again as is, through :func:`ppruning.run.prune.prune`, ``ppruning prune --from-record``
or ``POST /jobs``), the model's resolved revision (the commit hash transformers
resolved for a hub model; a content hash of the files of a local folder), a
fingerprint of the data (task, dataset and config or the custom files' digests, the
split, the seed, the number and a hash of the selected examples as tokenised), the
seed, the library versions and the git revision of this project.

``rerun_spec`` is ``spec`` with a hub model's revision pinned to the resolved commit,
so a rerun reads the same weights even after the branch moved.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ppruning.errors import InvalidConfigError
from ppruning.model.refs import ModelRef
from ppruning.tasks.refs import TaskRef

#: 2: records carry ``method`` (name, version, resolved params, sampling block); version 1 records still rerun.
RECORD_VERSION = 2
#: Files of a local model folder left out of its content hash: they do not change what loads.
_SKIP_NAMES = {"record.json", "README.md", ".gitattributes"}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: Path) -> dict[str, Any]:
    """sha256 over the sorted (relative path, file sha256) pairs of a folder, and the file count."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _SKIP_NAMES)
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(folder).as_posix()}\0{_file_sha256(path)}\n".encode())
    return {"sha256": h.hexdigest(), "files": len(files)}


def model_revision(ref: ModelRef, hf_config: Any = None) -> dict[str, Any]:
    """Where the weights came from: hub id and resolved commit, or a local folder and its content hash."""
    folder = Path(ref.id).expanduser()
    if folder.is_dir():
        return {"id": ref.id, "source": "local", "revision": ref.revision, "content": folder_digest(folder)}
    commit = getattr(hf_config, "_commit_hash", None) if hf_config is not None else None
    return {"id": ref.id, "source": "hub", "revision": ref.revision, "resolved_revision": commit}


def examples_digest(examples: Iterable[dict[str, Any]], columns: Sequence[str] = ("input_ids",)) -> dict[str, Any]:
    """sha256 of the selected examples' token ids (in order), and how many there were."""
    h = hashlib.sha256()
    count = 0
    for example in examples:
        for column in columns:
            if column in example:
                h.update(column.encode())
                h.update(np.asarray(example[column], dtype=np.int64).tobytes())
        h.update(b"\n")
        count += 1
    return {"count": count, "sha256": h.hexdigest(), "columns": list(columns)}


def data_fingerprint(
    task: TaskRef, split: str, examples: Iterable[dict[str, Any]] | None, **selection: Any
) -> dict[str, Any]:
    """The task's source (hub dataset and config, the offline override, or custom files with digests),
    the split, how the examples were chosen (``selection``: seed, max_instances, max_length) and their hash."""
    from ppruning.tasks.data import datasets_override_dir
    from ppruning.tasks.registry import get_task

    info = get_task(task.name)
    source: dict[str, Any] = {"task": task.name}
    if info.custom and task.data_files:
        source["files"] = {
            s: {"path": p, "sha256": _file_sha256(Path(p)) if Path(p).is_file() else None}
            for s, p in sorted(task.data_files.items())
        }
    else:
        source |= {"dataset": info.dataset, "dataset_config": info.dataset_config}
        override = datasets_override_dir(info.name)
        if override is not None:
            source["local_override"] = {"path": str(override), **folder_digest(override)}
    out: dict[str, Any] = {"source": source, "split": split, "selection": selection}
    out["examples"] = None if examples is None else examples_digest(examples)
    return out


def versions() -> dict[str, str | None]:
    """Versions of the libraries that decide the numbers, and this project's git revision."""
    from ppruning.run.report import library_versions

    out: dict[str, str | None] = dict(library_versions())
    for name in ("datasets", "numpy", "scipy", "tokenizers", "safetensors"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        out[name] = getattr(module, "__version__", None)
    return out


def rerun_spec(spec: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the hub model pinned to its resolved commit (local models are addressed by path)."""
    pinned = dict(spec)
    if model.get("source") == "hub" and model.get("resolved_revision"):
        pinned["model"] = {**spec["model"], "revision": model["resolved_revision"]}
    return pinned


def build_record(
    kind: str,
    spec: dict[str, Any],
    model: dict[str, Any],
    data: dict[str, Any],
    method: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one library run (``kind``: 'prune' or 'finetune'); ``spec`` is the validated config as JSON.

    ``method`` (prune runs): name, version, fully resolved parameters and sampling block,
    so a record made before a default changed still reruns to the same masks.
    """
    v = versions()
    record = {
        "record_version": RECORD_VERSION,
        "kind": kind,
        "spec": spec,
        "rerun_spec": rerun_spec(spec, model),
        "seed": spec.get("seed"),
        "model": model,
        "data": data,
        "versions": v,
        "git_revision": v.get("ppruning_git"),
    }
    if method is not None:
        record["method"] = method
    return record


def spec_from_record(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(kind, spec to run) of a record, a report holding one (``report["record"]``), or a job's record."""
    if "record" in record and isinstance(record["record"], dict):
        record = record["record"]
    if "rerun_spec" not in record or "kind" not in record:
        raise InvalidConfigError("not a reproducibility record (no 'kind' and 'rerun_spec')", field="record")
    spec = dict(record["rerun_spec"])
    sampling = spec.get("sampling")
    if isinstance(sampling, dict) and "cost_length" not in sampling:
        # Records written before the budget length was an option costed at the token cap;
        # the default became the inputs' mean length later, so such a record reruns at "max".
        spec["sampling"] = {**sampling, "cost_length": "max"}
    if "target" in spec:  # a prune spec: steps that came later, on by default, did not run before they existed
        for key in ("compensation", "outlier_units"):
            spec.setdefault(key, False)
    return record["kind"], spec


def write_record(
    kind: str,
    spec: dict[str, Any],
    ref: ModelRef,
    hf_config: Any,
    data: dict[str, Any],
    *folders: Path,
    method: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's record, also written as ``record.json`` into each of ``folders``."""
    record = build_record(kind, spec, model_revision(ref, hf_config), data, method)
    for folder in folders:
        (Path(folder) / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
