"""Optional bearer-token auth for ``/api/*`` (webhooks excepted: they are authenticated by their signatures), and
the refusal of state changes that a browser makes for another site."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard


def bearer_guard(token: str) -> Guard:
    """A guard that lets through only ``Authorization: Bearer <token>``, compared in constant time."""
    expected = token.encode()

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        scheme, _sep, given = connection.headers.get("authorization", "").partition(" ")
        # compare_digest even for a wrong scheme, so that the time taken says nothing about the token.
        matches = hmac.compare_digest(given.strip().encode(), expected)
        if scheme.lower() != "bearer" or not matches:
            raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")

    return guard


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser says of a request it sends (Sec-Fetch-Site): from a page of this origin, or typed by its user.
OWN_SITE = frozenset({"same-origin", "none"})


def same_origin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse (403) a state change that a browser sends on behalf of another site's page.

    Without an API token, any web page a developer opens could otherwise POST to the SPANE on their machine (a
    "simple" request needs no CORS preflight, and the API reads a ``text/plain`` body as JSON): register a workflow
    whose http nodes reach their private network, and run it. Browsers mark such requests ``Sec-Fetch-Site:
    cross-site``; the console's own calls are ``same-origin``, and clients other than browsers send no such header.
    """
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    site = connection.headers.get("sec-fetch-site")
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


def local_names_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Without an API token, on a loopback address: answer only requests addressed to this machine by name.

    A web page can point a host name of its own at 127.0.0.1 (DNS rebinding); the browser then takes SPANE for
    that page's origin, and the page may read and change everything. Such requests carry the page's name in
    ``Host``, which no local client sends.
    """
    host = connection.headers.get("host", "")
    if not is_loopback(_name_of(host)):
        raise PermissionDeniedException(
            f"without SPANE_API_TOKEN, this SPANE answers only requests addressed to localhost (Host: {host!r}); set"
            " SPANE_API_TOKEN to reach it by another name"
        )


def _name_of(host: str) -> str:
    """The name in a ``Host`` header: without its port, an IPv6 address without its brackets."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.partition(":")[0]
