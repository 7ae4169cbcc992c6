"""How ``ppruning wait`` shows a job's live events: a bar on a terminal, plain lines in CI logs.

On a TTY, progress redraws one line (``\\r``) and stage changes and log messages get
lines of their own. Anywhere else (a CI log), every stage change and message is one
line, and progress is one line at most every ``plain_interval_s`` or each 10% of the
job, so a log stays readable and still shows that the job moves.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ppruning_client.sse import SseEvent


def format_duration(seconds: float | None) -> str:
    """Seconds as ``12s``, ``3m05s`` or ``1h02m``: one way of writing a duration in every client line."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_text(data: dict[str, Any], width: int = 24) -> str:
    """One progress line: bar, overall percent, stage step/total, ETA, loss and latest metric."""
    fraction = float(data.get("fraction") or 0.0)
    done = int(width * fraction)
    counter = f" {data['step']}/{data['total']}" if data.get("total") else ""
    parts = [f"[{'#' * done}{'.' * (width - done)}] {100 * fraction:5.1f}%", f"{data.get('stage') or '-'}{counter}"]
    if data.get("eta_s") is not None:
        parts.append(f"eta {format_duration(data['eta_s'])}")
    if data.get("loss") is not None:
        parts.append(f"loss={data['loss']:.4g}")
    metric = data.get("metric")
    if isinstance(metric, dict) and metric.get("value") is not None:
        parts.append(f"{metric['name']}={metric['value']:.4g}")
    return "  ".join(parts)


class LivePrinter:
    """Call with each :class:`~client.http_client.SseEvent` of a job's stream."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, plain_interval_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.plain_interval_s = plain_interval_s
        self._open_line = False
        self._last_plain = time.monotonic()
        self._last_decile = -1
        #: The error-level messages printed, so the caller need not print a job's error twice.
        self.errors_shown: list[str] = []

    def _line(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: SseEvent) -> None:
        item = event.data
        data = item.get("data") or {}
        if event.event == "end":
            # The error itself is the caller's to print, once (``wait`` ends with it).
            self._line(f"job {item.get('state')}")
        elif event.event == "progress":
            self._progress(data)
        elif event.event == "stage":
            self._line(f"[{data.get('stage')}] {item.get('message') or ''}".rstrip())
            self._last_decile = max(self._last_decile, int(10 * float(data.get("fraction") or 0.0)))
        else:
            level = item.get("level") or "info"
            prefix = "" if level == "info" else f"{level}: "
            if level == "error":
                self.errors_shown.append(str(item.get("message")))
            self._line(f"{prefix}{item.get('message')}")

    def _progress(self, data: dict[str, Any]) -> None:
        text = progress_text(data)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self._open_line = True
            return
        now = time.monotonic()
        decile = int(10 * float(data.get("fraction") or 0.0))
        if now - self._last_plain >= self.plain_interval_s or decile > self._last_decile:
            self._last_plain, self._last_decile = now, max(decile, self._last_decile)
            self._line(text)
