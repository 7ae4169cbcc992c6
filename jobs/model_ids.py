"""What a model id in a job spec names, decided here and nowhere else: a local folder or a hub repository.

A spec's ``model.id`` (and a teacher's ``teacher.id``) is **local** when it is written as
a path: absolute (``/models/bert``), ``file:``, or starting with ``./``, ``../`` or ``~``
(those are refused later: local paths must be absolute and inside
``PPRUNING_ALLOWED_MODEL_ROOTS``). Anything else must be a hub id, ``name`` or
``org/name``, and is only ever resolved on the Hugging Face hub (or its cache).

Why "only ever" needs care: ``from_pretrained("org/name")`` first looks for a folder
``org/name`` under the process's working directory, so a hub id can load a folder outside
every allowed root. So the service never lets a hub id meet a working directory:

- at submission, a hub model's config is fetched with the hub client
  (:func:`hub_config_folder`), never through ``from_pretrained(id)``;
- the worker runs every attempt in an empty working directory
  (:func:`worker.inputs.empty_working_dir`), where no relative folder exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import InvalidSpec

#: Hugging Face repo ids: ``name`` or ``org/name``, letters, digits, '-', '_', '.', no '..'.
HUB_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_PATH_PREFIXES = ("/", "./", "../", "~", "file:", ".\\")


@dataclass(frozen=True)
class LocalModel:
    """A folder on the service's disks, as the spec wrote it (checked against the roots elsewhere)."""

    path: str


@dataclass(frozen=True)
class HubModel:
    """A repository on the Hugging Face hub."""

    repo_id: str


def is_local(model_id: str) -> bool:
    """True when ``model_id`` is written as a path (see the module docstring)."""
    return model_id.startswith(_PATH_PREFIXES) or "\\" in model_id or model_id in (".", "..")


def parse_model_id(model_id: str, field: str) -> LocalModel | HubModel:
    """The one decision: a local folder, a hub repository, or :class:`InvalidSpec` naming ``field``."""
    if "\x00" in model_id:
        raise InvalidSpec("the model id contains a NUL byte", field=field)
    if is_local(model_id):
        return LocalModel(model_id)
    if not HUB_ID.match(model_id):
        raise InvalidSpec("not a hub id ('org/name') nor an absolute local path", field=field)
    return HubModel(model_id)


def hub_config_folder(repo_id: str, revision: str | None) -> Path:
    """The folder holding the hub model's ``config.json`` in the hub cache (fetched when missing).

    Resolved by the hub client, so ``org/name`` can only mean the repository, whatever
    folders the working directory holds. Raises the hub client's errors (offline, unknown repo).
    """
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, "config.json", revision=revision)).parent


#: The files a tokenizer is read from (whichever a repository has), fetched without its weights.
TOKENIZER_FILES = [
    "config.json",
    "tokenizer*",
    "vocab*",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "*.model",
]


def hub_tokenizer_folder(repo_id: str, revision: str | None) -> Path:
    """The folder holding the hub model's tokenizer files in the hub cache (fetched when missing).

    Resolved by the hub client like :func:`hub_config_folder`, and without the weights.
    Raises the hub client's errors (offline, unknown repo).
    """
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=TOKENIZER_FILES))
