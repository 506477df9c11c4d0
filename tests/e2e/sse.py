"""Reading server-sent events in the e2e tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    id: str | None
    event: str | None
    data: dict[str, Any]


def messages(source: httpx.Response | Iterable[str]) -> Iterator[Message]:
    """The messages of an SSE response (or its lines) as they arrive (comments, such as heartbeats, left out)."""
    fields: dict[str, str] = {}
    for line in source.iter_lines() if isinstance(source, httpx.Response) else source:
        if line == "":
            if "data" in fields:
                yield Message(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def read_all(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> list[Message]:
    """Every message of a stream that ends by itself."""
    with client.stream("GET", url, headers=headers, timeout=30.0) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(messages(response))
