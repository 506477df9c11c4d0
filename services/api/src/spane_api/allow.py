"""``OPTIONS`` answers whose ``Allow`` header lists every method of the path.

Litestar makes an ``OPTIONS`` handler when it sees the first handler of a path and keeps it when more handlers of
that path are registered one by one, so its ``Allow`` lists only the first handler's methods (``OPTIONS, POST`` on
``/api/workflows``, which also answers ``GET``). Registering our own handler first, with the union of the methods
of a router's handlers per path, makes the answer exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from litestar import Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_204_NO_CONTENT


def _options_handler(path: str, methods: set[str]) -> HTTPRouteHandler:
    allow = ", ".join(sorted(methods | {"OPTIONS"}))

    async def options() -> Response[None]:
        return Response(None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return route(path, http_method=["OPTIONS"], include_in_schema=False, name=f"options:{path}")(options)


def with_options(handlers: Sequence[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """``handlers`` preceded by one ``OPTIONS`` handler per path they serve (routes of one router)."""
    methods: defaultdict[str, set[str]] = defaultdict(set)
    for handler in handlers:
        for path in handler.paths:
            methods[path] |= set(handler.http_methods)
    return [*(_options_handler(path, found) for path, found in methods.items()), *handlers]
