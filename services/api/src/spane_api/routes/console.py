"""The web console: ``GET /`` and its assets under ``/console/``, all shipped in this package (no CDN).

The console is a small static front end (plain JavaScript modules, no build step) that calls the JSON API from the
browser with the token it asks for; so these routes stay open, and the data behind them does not.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

# Litestar adds "; charset=utf-8" to every text/* type itself.
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# Everything the page loads comes from this origin; nothing inline, nothing from elsewhere.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _assets(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_assets(entry, f"{name}/"))
        elif any(name.endswith(suffix) for suffix in _TYPES):
            found[name] = entry.read_bytes()
    return found


def console_router() -> Router:
    """The console's routes, with its assets read once from the package."""
    assets = _assets(files("spane_api") / "console")

    def asset(name: str) -> Response[bytes]:
        body = assets.get(name)
        if body is None:
            raise NotFoundException(f"no console asset {name!r}")
        media_type = _TYPES["." + name.rsplit(".", 1)[-1]]
        return Response(body, media_type=media_type, headers=_HEADERS)

    @get("/", summary="The web console", include_in_schema=False)
    async def index() -> Response[bytes]:
        return asset("index.html")

    @get("/console/{name:path}", summary="A console asset", include_in_schema=False)
    async def console_asset(name: FromPath[str]) -> Response[bytes]:
        return asset(name.lstrip("/"))

    return Router("/", route_handlers=[index, console_asset], tags=["console"])
