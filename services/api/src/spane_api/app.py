"""The Litestar app: ``create_app(settings)`` wires routes, errors, auth, metrics and the resources' lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from spane_core.settings import Settings
from spane_core.validation import BUILTIN_NODE_TYPES, NodeTypeSpec

from spane_api.auth import bearer_guard
from spane_api.deps import Dependencies, open_dependencies
from spane_api.metrics import Metrics, MetricsMiddleware
from spane_api.problems import exception_handlers
from spane_api.routes import executions, health, workflows


def _dependencies(state: State) -> Dependencies:
    deps: Dependencies = state.deps
    return deps


def _version() -> str:
    try:
        return version("spane-api")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings, node_types: Mapping[str, NodeTypeSpec | None] | None = None) -> Litestar:
    """The API over the Redis and Postgres that ``settings`` name; nothing connects until the app starts.

    ``node_types`` are custom node types (name -> config schema, ``None`` for any config) accepted in definitions
    besides the built-in ones, e.g. ``spane_core.sdk.registry.config_schemas()`` after loading the plugins.
    """
    known_types: dict[str, NodeTypeSpec | None] = {**BUILTIN_NODE_TYPES, **(node_types or {})}
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_dependencies(settings, known_types, metrics) as deps:
            app.state.deps = deps
            yield

    token = settings.api_token.get_secret_value() if settings.api_token else None
    api = Router(
        "/api",
        guards=[bearer_guard(token)] if token else [],
        security=[{"bearer": []}] if token else None,
        route_handlers=[
            Router("/workflows", route_handlers=workflows.HANDLERS, tags=["workflows"]),
            Router("/executions", route_handlers=executions.HANDLERS, tags=["executions"]),
        ],
    )
    return Litestar(
        route_handlers=[api, *health.HANDLERS],
        lifespan=[lifespan],
        dependencies={"deps": Provide(_dependencies, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        middleware=[DefineMiddleware(MetricsMiddleware, metrics=metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="SPANE",
            version=_version(),
            path="/schema",
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        ),
        debug=False,
    )
