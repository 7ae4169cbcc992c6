"""A stand-in for the Hugging Face hub on a loopback port that knows no repository.

Every request gets what the hub answers for an unknown repository (404 with
``X-Error-Code: RepoNotFound``), so the real hub client raises its real error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _NotFound(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b'{"error": "Repository Not Found"}'
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _answer  # noqa: N815 - the handler's protocol names

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def hub_without_repositories() -> Iterator[str]:
    """Serve until the block ends; yields the endpoint URL (for ``HF_ENDPOINT``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
