"""What an http node's request carries on when a redirect leads to another origin.

httpx follows redirects and drops ``Authorization`` when the origin changes, but sends every other header on: a
node's ``X-Api-Key: {{ $secrets.KEY }}`` would reach whatever host the answer redirects to. Here, once a redirect
leaves the node's origin (scheme, host, port), the headers that the node's config names and that carry a
credential (a secret's value, or a name such as ``X-Api-Key``, ``Cookie``, ``X-Auth-Token``) are no longer sent.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import httpx

CREDENTIAL_NAME = re.compile(r"auth|token|key|secret|cookie|session|passw|signature|credential", re.IGNORECASE)
NOT_CREDENTIALS = frozenset({"idempotency-key"})  # SPANE's own, the same for every try: the new origin may use it
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class Sent:
    origin: Origin
    private: frozenset[str]  # lower-case names of the headers that stay with the origin


_sent: ContextVar[Sent | None] = ContextVar("spane_http_sent", default=None)


def origin_of(url: httpx.URL) -> Origin:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


def private_headers(
    request: httpx.Request, configured: Iterable[str], secret_values: Collection[str]
) -> frozenset[str]:
    """Of the header names the node configured, those whose header carries a credential."""
    private = set()
    for name in configured:
        value = request.headers.get(name, "")
        if name.lower() in NOT_CREDENTIALS:
            continue
        if CREDENTIAL_NAME.search(name) or any(secret in value for secret in secret_values):
            private.add(name.lower())
    return frozenset(private)


@contextlib.contextmanager
def sending(request: httpx.Request, private: frozenset[str]) -> Iterator[None]:
    """While ``request`` is sent (its redirects followed): ``private`` stays with its origin."""
    token = _sent.set(Sent(origin_of(request.url), private))
    try:
        yield
    finally:
        _sent.reset(token)


async def keep_private_headers_home(request: httpx.Request) -> None:
    """httpx's request hook, called for each request of a send, redirects included."""
    sent = _sent.get()
    if sent is not None and sent.private and origin_of(request.url) != sent.origin:
        for name in sent.private:
            request.headers.pop(name, None)


def install(client: httpx.AsyncClient) -> None:
    """Add the hook to ``client`` (once)."""
    hooks = client.event_hooks
    if keep_private_headers_home not in hooks["request"]:
        client.event_hooks = {**hooks, "request": [*hooks["request"], keep_private_headers_home]}
