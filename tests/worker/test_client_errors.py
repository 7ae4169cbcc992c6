"""The client's errors are one line each: a service that is not there, a refused spec, a failed job.

No service is needed: nothing listens on port 9 of the loopback, and the error bodies are
the API's documented shape (``{"error": {"type", "message", "field"}}``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppruning_client.cli_common import EXIT_UNREACHABLE, summary_line
from ppruning_client.commands import main
from ppruning_client.http_client import error_text

NOWHERE = "http://127.0.0.1:9"
JOB = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "{spec}"],
        ["status", JOB],
        ["wait", JOB],
        ["wait", JOB, "--no-stream"],
        ["download", JOB, "report.json", "-o", "{out}"],
        ["cancel", JOB],
        ["list", "--state", "running"],
        ["events", JOB],
        ["events", JOB, "--follow"],
        ["artifacts", JOB],
        ["delete", JOB],
    ],
    ids=lambda c: " ".join(c[:3:2] if c[0] in ("wait", "events") else c[:1]),
)
def test_a_service_that_is_not_there_is_one_line_naming_the_url_and_exit_5(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "prune", "model": {"id": "m"}}))
    argv = [a.format(spec=spec, out=tmp_path / "r.json") for a in command]
    code = main([*argv, "--url", NOWHERE, "--api-key", "k"])
    out, err = capsys.readouterr()
    assert code == EXIT_UNREACHABLE == 5
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"cannot reach the service at {NOWHERE}" in err and "ConnectError" in err
    assert out == "" and not (tmp_path / "r.json").exists()


def test_the_error_line_keeps_the_field_and_every_problem() -> None:
    # The field leads the message, once.
    assert error_text({"error": {"type": "invalid_target", "message": "must be in (0, 1)", "field": "target"}}) == (
        "invalid_target: target: must be in (0, 1)",
        "target",
    )
    assert (
        error_text({"error": {"type": "validation_error", "message": "target: Field required", "field": "target"}})[0]
        == "validation_error: target: Field required"
    )
    # Several problems: each one with its field, the real mistake included.
    text, field = error_text(
        {
            "error": {
                "type": "validation_error",
                "message": "target: Field required (and 1 more problem)",
                "field": "target",
                "problems": [
                    {"field": "target", "message": "Field required"},
                    {"field": "targt", "message": "Extra inputs are not permitted"},
                ],
            }
        }
    )
    assert text == "validation_error: target: Field required; targt: Extra inputs are not permitted"
    assert field == "target"
    with pytest.raises(ValueError):
        error_text({"detail": "not ours"})


def test_the_summary_line_says_state_kind_verdict_duration_and_artifacts() -> None:
    job = {
        "id": JOB, "state": "succeeded", "kind": "pipeline", "result": {"verdict": "accepted"},
        "created_at": "2026-01-01T10:00:00Z", "started_at": "2026-01-01T10:00:02Z",
        "finished_at": "2026-01-01T10:03:07+00:00", "updated_at": "2026-01-01T10:03:07Z",
        "artifacts": [{"name": "model.tar.gz"}, {"name": "report.json"}],
    }  # fmt: skip
    assert summary_line(job) == (f"job {JOB} succeeded  kind=pipeline  verdict=accepted  duration=3m05s  artifacts=2")
    assert "verdict=-" in summary_line({**job, "result": None, "state": "failed", "artifacts": []})


def test_a_read_on_a_connection_the_server_just_closed_is_sent_again_and_a_write_is_not() -> None:
    """The server closed a pooled keep-alive connection as the client reused it: a GET is sent once
    more on a new connection; a POST is not (it may have reached the service)."""
    import httpx

    from ppruning_client.http_client import Client, ServiceUnreachable

    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1 or request.method == "POST":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json={"id": JOB, "state": "running"})

    with httpx.Client(base_url="http://svc", transport=httpx.MockTransport(handler)) as http:
        client = Client("http://svc", "key", http=http)
        assert client.job(JOB)["state"] == "running" and calls == ["GET", "GET"]
        with pytest.raises(ServiceUnreachable, match="RemoteProtocolError"):
            client.submit({"kind": "prune"})
    assert calls == ["GET", "GET", "POST"]
