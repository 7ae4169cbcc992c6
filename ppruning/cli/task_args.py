"""The task flags shared by ``ppruning finetune`` and ``ppruning evaluate`` (custom-task files and columns)."""

from __future__ import annotations

import argparse
from typing import Any

from ppruning.cli.checks import check_data_files
from ppruning.errors import InvalidConfigError


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="registered task (see `ppruning tasks`), e.g. sst2, squad, wikitext-2")
    p.add_argument(
        "--data-files",
        action="append",
        default=[],
        metavar="SPLIT=PATH[,SPLIT=PATH]",
        help="custom tasks: train=a.csv,validation=b.csv,test=c.csv (repeatable)",
    )
    p.add_argument("--text-column", default=None, help="custom tasks: the text column (default 'text')")
    p.add_argument("--text-pair-column", default=None, help="text-pair tasks: the second text column")
    p.add_argument("--label-column", default=None, help="custom tasks: the label column (default 'label')")


def task_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The ``TaskRef`` fields the flags give (only those given)."""
    task: dict[str, Any] = {"name": args.task}
    files: dict[str, str] = {}
    for value in args.data_files:
        for item in filter(None, value.split(",")):
            split, sep, path = item.partition("=")
            if not sep or not split or not path:
                raise InvalidConfigError(f"--data-files takes SPLIT=PATH, got {item!r}", field="task.data_files")
            files[split.strip()] = path.strip()
    if files:
        check_data_files(files)
        task["data_files"] = files
    for key in ("text_column", "text_pair_column", "label_column"):
        if getattr(args, key) is not None:
            task[key] = getattr(args, key)
    return task


def validation_error(exc: Any) -> InvalidConfigError:
    """A pydantic ValidationError as one InvalidConfigError naming the first field at fault."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "config"
    return InvalidConfigError(first["msg"].replace("Value error, ", ""), field=field)


def third_party_bars_off() -> None:
    """No progress bars of the hub, datasets and transformers ("Map", "Loading weights", "Writing
    model shards"): a command that draws its own progress would have two kinds of bar interleaved.

    Called before anything loads: the bars are drawn while loading.
    """
    import datasets
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    datasets.disable_progress_bars()
    transformers.logging.disable_progress_bar()


def quiet_libraries() -> None:
    """Silence the hub, datasets and transformers progress bars and their warnings (for --quiet)."""
    import datasets
    import transformers

    third_party_bars_off()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
