"""``ppruning run spec.json``: a job spec run here with the service's checks, giving the service's artifacts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.worker.conftest import FIXTURES
from tests.worker.harness import prune_spec
from worker.cli import register_run


def _run(*words: str) -> int:
    parser = argparse.ArgumentParser(prog="ppruning")
    register_run(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", *words])
    return int(args.func(args))


def test_a_prune_spec_runs_here_with_the_service_artifacts(tiny_bert_path: Path, tmp_path: Path, capsys) -> None:
    spec = prune_spec(tiny_bert_path, FIXTURES, measure=False)
    spec["params"] = {"max_instances": 16, "sampling_tokens": 16, "lambda_val": 1.0}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    assert _run(str(tmp_path / "spec.json"), "--output", str(out)) == 0, capsys.readouterr().err
    job = json.loads((out / "job.json").read_text())
    assert job["state"] == "succeeded" and job["kind"] == "prune"
    names = {Path(p).name for p in job["files"]}
    assert {"report.json", "record.json"} <= names and any(n.startswith("model") for n in names), names
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "ppruning" and report["speed"]["measured"] is False
    assert "prune job succeeded" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "field"), [({"targt": {"flops_reduction": 0.2}}, "targt"),
                                               ({"task": {"name": "sst-2"}}, "sst2")])  # fmt: skip
def test_a_spec_the_service_would_refuse_is_refused_naming_the_field(
    change: dict, field: str, tiny_bert_path: Path, tmp_path: Path, capsys
) -> None:
    spec = prune_spec(tiny_bert_path, FIXTURES) | change
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert _run(str(tmp_path / "spec.json"), "--output", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppruning: error:") and field in err, err
    assert not (tmp_path / "out" / "job.json").exists()
