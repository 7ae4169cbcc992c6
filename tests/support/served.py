"""An app behind real uvicorn on a free loopback port, in a thread of the test process.

Event streams need a real server: the test client collects a whole response before
returning it, so an endless stream would never come back.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, *, backlog: int = 2048) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL."""
    import uvicorn

    port = free_port()
    from api.cli import KEEP_ALIVE_S

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", backlog=backlog, timeout_keep_alive=KEEP_ALIVE_S
    )  # as `ppruning serve` runs it
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert thread.is_alive(), "uvicorn stopped while starting"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
