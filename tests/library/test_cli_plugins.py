"""Plugin commands of ``ppruning`` whose extra is missing are listed with their install line, not a traceback."""

from __future__ import annotations

import argparse
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

from ppruning.cli.plugins import EXIT_MISSING, register_plugins


def _distribution(tmp_path: Path, entry_points: str, requires: list[str]) -> PathDistribution:
    info = tmp_path / "demo_service-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: demo-service", "Version: 1.0"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text("[ppruning.cli]\n" + entry_points)
    return PathDistribution(info)


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="ppruning")
    return parser, parser.add_subparsers(dest="command", required=True)


def test_command_whose_extra_is_missing_is_listed_with_its_install_line(tmp_path, capsys):
    dist = _distribution(
        tmp_path,
        "serve = api.cli:register_serve [service]\nworker = worker.cli:register [service]\n",
        ['no-such-package-for-ppruning>=1; extra == "service"', 'numpy; extra == "other"'],
    )
    parser, sub = _parser()
    plugins = register_plugins(sub, dist.entry_points)
    line = "pip install 'demo-service[service]'"
    assert plugins.missing == {"serve": line, "worker": line}
    assert plugins.summary() == [f"serve, worker: {line}"]
    args = parser.parse_args(["serve"])
    assert args.func(args) == EXIT_MISSING
    assert line in capsys.readouterr().err


def test_command_whose_extra_is_installed_registers(tmp_path):
    dist = _distribution(
        tmp_path, "methods2 = ppruning.cli.cmd_methods:register [lib]\n", ['numpy; extra == "lib"']
    )
    parser, sub = _parser()
    assert register_plugins(sub, dist.entry_points).missing == {}
    assert "methods" in sub.choices  # cmd_methods.register added its own command


def test_command_whose_module_fails_to_import_is_listed_not_raised(tmp_path):
    dist = _distribution(tmp_path, "ghost = no_such_module_for_ppruning:register [ghost]\n", [])
    _, sub = _parser()
    assert register_plugins(sub, dist.entry_points).missing == {"ghost": "pip install 'demo-service[ghost]'"}


def test_running_a_missing_command_exits_2_before_parsing_its_options(monkeypatch, capsys):
    from ppruning.cli import main as cli_main
    from ppruning.cli.plugins import Plugins

    def fake_register(sub: argparse._SubParsersAction, eps=None) -> Plugins:
        return Plugins(missing={"serve": "pip install 'x[service]'"})

    monkeypatch.setattr(cli_main, "register_plugins", fake_register)
    assert cli_main.main(["serve", "--port", "8000"]) == EXIT_MISSING
    assert "pip install 'x[service]'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main.main(["--help"])
    assert "not installed:\n  serve: pip install 'x[service]'" in capsys.readouterr().out
