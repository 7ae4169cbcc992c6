"""Callbacks reach public hosts only, at the address that was checked, signed against replay."""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from jobs import callback_policy
from jobs.callback_policy import CallbackRefused, check_submitted, resolve_target
from worker.callbacks import SIGNATURE_HEADER, send_once, sign, verify

PRIVATE_URLS = [
    "http://127.0.0.1:8000/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:5432/",
    "http://[::1]:6379/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://10.0.0.5/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[fe80::1]/",
    "http://240.0.0.1/",
]


@pytest.fixture
def receiver():
    """A real HTTP server on loopback recording (path, headers) and answering the queued replies."""
    got: list[tuple[str, dict[str, str]]] = []
    replies: list[tuple[int, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, dict(self.headers)))
            status, headers = replies.pop(0) if replies else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port, got, replies
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_and_loopback_hosts_are_refused_in_every_spelling(url):
    with pytest.raises(CallbackRefused):
        check_submitted(url, allow_private=False)
    with pytest.raises(CallbackRefused):
        resolve_target(url, allow_private=False)


def test_credentials_in_a_callback_url_are_refused_even_when_private_hosts_are_allowed():
    with pytest.raises(CallbackRefused, match="credentials"):
        check_submitted("http://user:pw@internal/", allow_private=True)


def test_public_addresses_pass_and_the_operator_setting_allows_loopback():
    check_submitted("https://93.184.215.14/hook", allow_private=False)
    assert resolve_target("http://127.0.0.1:9/", allow_private=True).address == ipaddress.ip_address("127.0.0.1")


def test_the_worker_does_not_call_a_loopback_receiver_unless_allowed(receiver):
    port, got, _ = receiver
    assert not send_once(f"http://127.0.0.1:{port}/hook", {"id": "j"}, "k")
    assert got == []


def test_a_name_that_resolves_to_a_private_address_at_send_time_is_not_called(receiver, monkeypatch):
    port, got, _ = receiver
    monkeypatch.setattr(callback_policy, "resolve", lambda host, port: [ipaddress.ip_address("127.0.0.1")])
    assert not send_once(f"http://hooks.example.test:{port}/hook", {"id": "j"}, "k")
    assert got == []


def test_the_worker_connects_to_the_checked_address_with_the_original_host(receiver, monkeypatch):
    """The name is resolved once and checked; the connection goes to that address, not to a second lookup."""
    port, got, _ = receiver
    answers = iter([[ipaddress.ip_address("127.0.0.1")]])  # a second lookup would raise StopIteration
    monkeypatch.setattr(callback_policy, "resolve", lambda host, port: next(answers))
    assert send_once(f"http://hooks.example.test:{port}/hook", {"id": "j"}, "k", allow_private=True)
    ((path, headers),) = got
    assert path == "/hook" and headers["Host"] == f"hooks.example.test:{port}"


def test_proxy_variables_do_not_reroute_callbacks(receiver, monkeypatch):
    port, got, _ = receiver
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    assert send_once(f"http://127.0.0.1:{port}/hook", {"id": "j"}, "k", allow_private=True)
    assert len(got) == 1


def test_redirects_from_the_receiver_are_not_followed(receiver):
    port, got, replies = receiver
    replies.append((307, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    assert not send_once(f"http://127.0.0.1:{port}/hook", {"id": "j"}, "k", allow_private=True)
    assert [path for path, _ in got] == ["/hook"]


def test_the_signature_covers_a_timestamp_so_an_old_callback_cannot_be_replayed(receiver):
    port, got, _ = receiver
    assert send_once(f"http://127.0.0.1:{port}/hook", {"id": "j"}, "s3cret", allow_private=True)
    ((_, headers),) = got
    header = headers[SIGNATURE_HEADER]
    assert header.startswith("t=") and ",sha256=" in header
    body = b'{"id":"j"}'
    assert verify(body, header, "s3cret")
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert not verify(body, header, "s3cret", now=timestamp + 3600)  # replayed an hour later
    assert not verify(body, header.replace(f"t={timestamp}", f"t={timestamp + 1}"), "s3cret")  # re-dated
    assert not verify(body, sign(body, "s3cret").split(",")[1], "s3cret")  # the old format, no timestamp


def test_the_documented_signature_header_is_the_one_sent():
    from jobs.specs import PruneJobSpec

    assert SIGNATURE_HEADER in PruneJobSpec.model_fields["callback_url"].description


def test_a_worker_without_a_secret_sends_no_callback_rather_than_an_unsigned_one(receiver):
    port, got, _ = receiver
    assert not send_once(f"http://127.0.0.1:{port}/hook", {"id": "j"}, "", allow_private=True)
    assert got == []
