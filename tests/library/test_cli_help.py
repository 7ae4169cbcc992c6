"""The ``ppruning`` help as a newcomer reads it: every option described with its default, plain text
(no reStructuredText markup), the service's flags documented, and a pipe into ``head`` ends quietly."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ppruning.cli.main import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_prune_option_has_a_description_and_its_default() -> None:
    prune = _commands()["prune"]
    text = prune.format_help()
    for action in prune._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{action.option_strings[-1]} has no description"
        if not action.required and action.default not in (None, []) and not isinstance(action.default, bool):
            assert f"(default: {action.default})" in " ".join(text.split()), action.option_strings[-1]


def test_the_sampling_and_method_flags_name_the_defaults_that_apply() -> None:
    from ppruning.cli.cmd_prune import _PARAM_FLAGS, _SAMPLING_FLAGS
    from ppruning.methods import all_methods
    from ppruning.methods.contract import SamplingConfig

    for name, (_, text) in _SAMPLING_FLAGS.items():
        default = SamplingConfig.model_fields[name].default
        assert f"(default: {default if default is not None else 'the task' + chr(39) + 's'})" in text, name
    ppruning = all_methods()["ppruning"].params_model.model_fields
    for name, (_, text) in _PARAM_FLAGS.items():
        assert str(ppruning[name].default) in text, name


@pytest.mark.parametrize("command", ["prune", "evaluate", "tasks", "methods", "finetune", "export", "inspect"])
def test_help_is_plain_text(command: str) -> None:
    text = _commands()[command].format_help()
    assert "``" not in text and ":func:" not in text and ":mod:" not in text, text


def test_serve_documents_host_and_port() -> None:
    serve = _commands().get("serve")
    if serve is None:
        pytest.skip("the service extra is not installed")
    helps = {a.dest: a.help for a in serve._actions}
    assert helps["host"] and helps["port"]
    assert "(default: 8000)" in serve.format_help()


def test_methods_reads_as_text_and_a_closed_pipe_ends_it_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppruning.cli.main", "methods"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert first.strip() and "Traceback" not in err and "BrokenPipe" not in err, err

    full = subprocess.run([sys.executable, "-m", "ppruning.cli.main", "methods"], capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip
    assert '"type":' not in full and "schema:" not in full and "ppruning methods --json" in full
