"""The client commands (submit, status, wait, download, list, events, artifacts, cancel, delete) over real HTTP."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ppruning.cli.main import main
from tests.worker.conftest import FIXTURES, served_api
from tests.worker.harness import API_KEY, prune_spec
from tests.worker.test_end_to_end import stored_files

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_ci_commands_submit_wait_download_and_fail_the_pipeline_on_a_failed_job(
    service_backend, spawn, tiny_model, tmp_path, capsys, monkeypatch
):
    spawn(service_backend)
    with served_api(service_backend) as url:
        auth = ["--url", url, "--api-key", API_KEY]
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps(prune_spec(tiny_model, FIXTURES)))
        assert main(["submit", str(spec_file), "-q", *auth]) == 0
        job_id = capsys.readouterr().out.strip()
        assert main(["wait", job_id, "--poll", "0.3", "--timeout", "90", "-q", *auth]) == 0
        summary = capsys.readouterr().out.strip().splitlines()
        assert len(summary) == 1 and summary[0].startswith(f"job {job_id} succeeded  kind=prune  verdict=")
        assert "duration=" in summary[0] and "artifacts=0" not in summary[0]
        assert main(["download", job_id, "report.json", "-o", str(tmp_path / "r.json"), *auth]) == 0
        assert json.loads((tmp_path / "r.json").read_text())["achieved"]
        capsys.readouterr()
        assert main(["status", job_id, *auth]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "succeeded"

        broken = tiny_model.parent / "broken_rows.csv"  # the header is right (submission reads it), rows are not
        broken.write_text("review,sentiment\nfine movie,pos\nno_such_row,pos,extra,fields\n")
        bad = prune_spec(tiny_model, FIXTURES)
        bad["task"]["data_files"]["train"] = str(broken)
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(bad)))
        assert main(["submit", "-", "-q", *auth]) == 0
        bad_id = capsys.readouterr().out.strip()
        assert main(["wait", bad_id, "--poll", "0.3", "--timeout", "60", "-q", "--json", *auth]) == 1
        captured = capsys.readouterr()
        failed = json.loads(captured.out)
        assert failed["state"] == "failed" and failed["error"]["type"] == "DataError"
        assert "broken_rows.csv" in failed["error"]["message"] and "DataError" in captured.err
        assert failed["artifacts"] == [] and stored_files(service_backend, bad_id) == []
        # Followed live (the finished job's stream replays), the error is printed once.
        assert main(["wait", bad_id, "--timeout", "60", *auth]) == 1
        captured = capsys.readouterr()
        assert captured.out.startswith(f"job {bad_id} failed  kind=prune") and len(captured.out.splitlines()) == 1
        assert captured.err.count(failed["error"]["message"]) == 1, captured.err
        assert main(["status", "00000000-0000-0000-0000-000000000000", *auth]) == 2

        # The job-management commands.
        assert main(["list", "--kind", "prune", "--limit", "1", *auth]) == 0
        listed = capsys.readouterr()
        assert listed.out.startswith(bad_id) and len(listed.out.splitlines()) == 1 and "--cursor" in listed.err
        assert main(["list", "--state", "succeeded", "--all", "--json", *auth]) == 0
        listed_items = json.loads(capsys.readouterr().out)["items"]  # other tests of the module share the owner
        assert job_id in [j["id"] for j in listed_items] and {j["state"] for j in listed_items} == {"succeeded"}
        assert main(["list", "--parent", job_id, "--json", *auth]) == 0
        assert json.loads(capsys.readouterr().out)["items"] == []
        assert main(["artifacts", job_id, *auth]) == 0
        assert any(line.startswith("report.json ") for line in capsys.readouterr().out.splitlines())
        assert main(["events", job_id, *auth]) == 0
        logged = capsys.readouterr().out
        assert "[collect]" in logged and len(logged.splitlines()) >= 5
        assert main(["events", job_id, "--follow", *auth]) == 0
        assert capsys.readouterr().out.strip().endswith("job succeeded")
        assert main(["cancel", job_id, *auth]) == 2  # finished: the service refuses (409), in one line
        refused = capsys.readouterr().err
        assert "409" in refused and len(refused.strip().splitlines()) == 1
        assert main(["delete", job_id, *auth]) == 0
        assert main(["status", job_id, *auth]) == 2


@pytest.mark.parametrize(
    ("content", "extra", "says"),
    [
        ('{"kind": ', [], "is not JSON"),
        ("[1, 2]", [], "must hold a JSON object"),
        ('{"seed": 1}', ["--from-record"], "not a reproducibility record"),
    ],
)
def test_submit_refuses_a_bad_file_in_one_line_without_calling_the_service(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, extra: list[str], says: str
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(content)
    # Nothing listens on port 9: a call to the service would fail with another message.
    code = main(["submit", str(spec), *extra, "--api-key", "k", "--url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
