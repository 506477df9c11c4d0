"""URLs as the http node shows them in errors and logs: without credentials, query values masked.

A definition may put a password in a URL (``https://user:pw@host``) or a key in its query (``?api_key=...``); the
error a failed call records goes to the event log, the API, the console and the worker's log, and httpx logs every
request's URL. Both show the URL through ``shown_url``.
"""

from __future__ import annotations

import logging

import httpx

MASK = "***"


def shown_url(url: httpx.URL | str) -> str:
    """``url`` without its user info, each query value replaced by ``***``."""
    parsed = httpx.URL(url)
    shown = parsed.copy_with(userinfo=b"", query=None)
    if parsed.query:
        masked = "&".join(f"{key}={MASK}" for key in dict.fromkeys(k for k, _ in parsed.params.multi_items()))
        return f"{shown}?{masked}"
    return str(shown)


class RedactUrls(logging.Filter):
    """Shows each ``httpx.URL`` argument of a record through ``shown_url`` (httpx logs ``HTTP Request: GET <url>``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(shown_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def redact_httpx_logs() -> None:
    """Install ``RedactUrls`` on httpx's logger (once per process)."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactUrls) for f in logger.filters):
        logger.addFilter(RedactUrls())
