"""The guard of ``/api/*`` (webhooks excepted: they are authenticated by their signatures): the optional bearer
token, without one answering only requests addressed to this machine when bound to a loopback address, and the
refusal of state changes that a browser makes for another site."""

from __future__ import annotations

import functools
import hmac
import ipaddress

from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Scope, Send


class ApiGuard:
    """The guard of ``/api/*``, as the router's middleware: the bearer token when there is one; with none, on a
    loopback address, only requests addressed to this machine; with or without, no state change for another site's
    page.

    A middleware rather than Litestar guards: Litestar runs a plain function guard in a worker thread and copies the
    route handler for each guard, which cost every start of the diamond ~160 µs of the API's CPU with two of them.
    """

    def __init__(self, app: ASGIApp, token: str | None, bind_host: str) -> None:
        self.app = app
        self.expected = None if token is None else token.encode()
        self.local_only = self.expected is None and is_loopback(bind_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            if self.expected is not None:
                check_bearer(scope, self.expected)
            elif self.local_only:
                check_local_name(scope)
            check_same_origin(scope)
        await self.app(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's first value, read from the ASGI scope (``connection.headers`` builds a mapping of them
    all first, ~20 µs a request); ``name`` in lower case, as ASGI gives names."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def check_bearer(scope: Scope, expected: bytes) -> None:
    """Let through only ``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _sep, given = (header(scope, b"authorization") or "").partition(" ")
    # compare_digest even for a wrong scheme, so that the time taken says nothing about the token.
    matches = hmac.compare_digest(given.strip().encode(), expected)
    if scheme.lower() != "bearer" or not matches:
        raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser says of a request it sends (Sec-Fetch-Site): from a page of this origin, or typed by its user.
OWN_SITE = frozenset({"same-origin", "none"})


def check_same_origin(scope: Scope) -> None:
    """Refuse (403) a state change that a browser sends on behalf of another site's page.

    Without an API token, any web page a developer opens could otherwise POST to the SPANE on their machine (a
    "simple" request needs no CORS preflight, and the API reads a ``text/plain`` body as JSON): register a workflow
    whose http nodes reach their private network, and run it. Browsers mark such requests ``Sec-Fetch-Site:
    cross-site``; the console's own calls are ``same-origin``, and clients other than browsers send no such header.
    """
    if scope.get("method", "GET") in SAFE_METHODS:
        return
    site = header(scope, b"sec-fetch-site")
    if site is not None and site.lower() not in OWN_SITE:
        raise PermissionDeniedException(f"a browser request from another site ({site}) may not change SPANE's state")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, an IPv6 one bracketed or not) names this machine only."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_local_name(scope: Scope) -> None:
    """Without an API token, on a loopback address: answer only requests addressed to this machine by name.

    A web page can point a host name of its own at 127.0.0.1 (DNS rebinding); the browser then takes SPANE for
    that page's origin, and the page may read and change everything. Such requests carry the page's name in
    ``Host``, which no local client sends.
    """
    host = header(scope, b"host") or ""
    if not _local_host_header(host):
        raise PermissionDeniedException(
            f"without SPANE_API_TOKEN, this SPANE answers only requests addressed to localhost (Host: {host!r}); set"
            " SPANE_API_TOKEN to reach it by another name"
        )


@functools.lru_cache(maxsize=256)  # a handful of Host values: parsing an address each request cost ~20 µs
def _local_host_header(host: str) -> bool:
    return is_loopback(_name_of(host))


def _name_of(host: str) -> str:
    """The name in a ``Host`` header: without its port, an IPv6 address without its brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0]
