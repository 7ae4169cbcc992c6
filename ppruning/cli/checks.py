"""Checks of what a user typed, run before any model or data is loaded.

A mistyped folder, an empty data file or an ``--output`` that is a file would otherwise
surface minutes later, after the model loaded, as another library's message. Each check
raises an :class:`~ppruning.errors.InvalidConfigError` naming the flag.
"""

from __future__ import annotations

from pathlib import Path

from ppruning.errors import InvalidConfigError

_PATH_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")
_SNIFF_BYTES = 65536


def check_model(value: str | Path, flag: str = "--model") -> None:
    """A value that is written as a path (or names an existing folder) must be an existing folder."""
    text = str(value)
    path = Path(text).expanduser()
    looks_local = text.startswith(_PATH_PREFIXES) or isinstance(value, Path) or path.exists()
    if looks_local and not path.is_dir():
        what = "is a file, not a model folder" if path.exists() else "does not exist"
        raise InvalidConfigError(f"model folder {text} {what}", field=flag)


def check_output_folder(path: Path, flag: str = "--output") -> None:
    """The output folder may exist (it is written into) but must not be a file."""
    if path.exists() and not path.is_dir():
        raise InvalidConfigError(f"{path} is a file; give a folder (new or existing) for the outputs", field=flag)


def check_data_files(files: dict[str, str], flag: str = "--data-files") -> None:
    """Each file exists, is not empty, is text, and starts the way its format does (a header, a JSON value)."""
    for split, name in files.items():
        path = Path(name).expanduser()
        where = f"{split}={name}"
        if not path.is_file():
            raise InvalidConfigError(f"{where}: no such file", field=flag)
        try:
            head = path.open("rb").read(_SNIFF_BYTES)
        except OSError as exc:
            raise InvalidConfigError(f"{where}: cannot be read ({exc.strerror})", field=flag) from None
        if not head.strip():
            raise InvalidConfigError(f"{where}: the file is empty", field=flag)
        if b"\0" in head:
            raise InvalidConfigError(f"{where}: a binary file, not CSV, TSV, JSON or text", field=flag)
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not just a character cut at the sniffed end
                raise InvalidConfigError(f"{where}: not UTF-8 text", field=flag) from None
            text = head[: exc.start].decode("utf-8")
        _check_start(where, path.suffix.lower(), text.lstrip("\ufeff"), flag)


def _check_start(where: str, suffix: str, text: str, flag: str) -> None:
    first = text.lstrip()[:1]
    if suffix in (".json", ".jsonl") and first not in ("{", "["):
        raise InvalidConfigError(f"{where}: does not start with a JSON object or array", field=flag)
    if suffix in (".csv", ".tsv"):
        header = text.splitlines()[0] if text.splitlines() else ""
        if not header.strip():
            raise InvalidConfigError(f"{where}: the first line (the header naming the columns) is empty", field=flag)
