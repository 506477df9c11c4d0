"""Optional bearer-token auth for ``/api/*`` (webhooks excepted: they are authenticated by their signatures)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
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
