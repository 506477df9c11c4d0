"""Logging for every service: text by default, or one JSON object per line (``SPANE_LOG_FORMAT=json``).

A line about an execution carries ``executionId``, ``nodeId``, ``attempt`` and ``traceId``: from ``extra=`` of the
call, else from the execution that the running task is about (``bind``, set by the worker for each node try).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

from spane_core.observe import context

FIELDS = ("executionId", "nodeId", "attempt")
_about: ContextVar[tuple[str, str | None, int | None, str | None] | None] = ContextVar("spane_log_about", default=None)


def bind(
    execution_id: str, node_id: str | None = None, attempt: int | None = None, traceparent: str | None = None
) -> None:
    """Name the execution (and node try) that the current task's log lines are about."""
    _about.set((execution_id, node_id, attempt, traceparent))


class ExecutionFilter(logging.Filter):
    """Puts the bound execution's fields on each record that does not name them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        about = _about.get()
        if about is not None and not hasattr(record, "executionId"):
            execution_id, node_id, attempt, traceparent = about
            record.executionId = execution_id
            if node_id is not None:
                record.nodeId = node_id
                record.attempt = attempt
            record.traceparent = traceparent
        return True


def trace_id(record: logging.LogRecord) -> str | None:
    execution_id = getattr(record, "executionId", None)
    if execution_id is None:
        return None
    parsed = context.parse(getattr(record, "traceparent", None))
    return f"{parsed.trace_id if parsed else context.trace_id_of(str(execution_id)):032x}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if (tid := trace_id(record)) is not None:
            line["traceId"] = tid
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> None:
    """Configure the root logger once for the process: every service alike."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ExecutionFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
