"""Server-Sent Events as the service streams a job's events: the parser the SDK reads them with."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    """One Server-Sent Event: ``id`` (the job event's id; None for ``end``), type, JSON data."""

    id: int | None
    event: str
    data: dict[str, Any]


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events of an SSE byte stream's lines (comments and ``retry`` skipped, multi-line data joined)."""
    event_id: int | None = None
    kind, data = "message", []
    for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"text": text}
                yield SseEvent(event_id, kind, payload if isinstance(payload, dict) else {"value": payload})
            event_id, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and value.isdigit():
            event_id = int(value)
