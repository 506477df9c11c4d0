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
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from spane_core import sdk
from spane_core.observe.telemetry import Telemetry
from spane_core.sdk import load_plugins
from spane_core.settings import Settings
from spane_core.validation import BUILTIN_NODE_TYPES, NodeTypeSpec

from spane_api.allow import with_options
from spane_api.auth import ApiGuard
from spane_api.deps import Dependencies, open_dependencies
from spane_api.metrics import HttpMetrics, MetricsMiddleware
from spane_api.problems import exception_handlers
from spane_api.routes import dlq, events, execution_options, executions, health, limits, schedules, webhooks, workflows
from spane_api.routes.console import console_router


def _dependencies(state: State) -> Dependencies:
    deps: Dependencies = state.deps
    return deps


def _version() -> str:
    try:
        return version("spane-api")
    except PackageNotFoundError:
        return "0.0.0"


def plugin_node_types(settings: Settings) -> dict[str, NodeTypeSpec | None]:
    """Import the plugins named in the settings and the entry points; their node types with config schemas."""
    load_plugins(settings.plugins)
    return sdk.registry.config_schemas()


def create_app(
    settings: Settings,
    node_types: Mapping[str, NodeTypeSpec | None] | None = None,
    telemetry: Telemetry | None = None,
) -> Litestar:
    """The API over the Redis and Postgres that ``settings`` name; nothing connects until the app starts.

    Definitions may use the built-in node types and ``node_types`` (name -> config schema, ``None`` for any
    config). Without ``node_types``, those of the plugins that workers load (``SPANE_PLUGINS`` and the
    ``spane.executors`` entry points) are imported and used, so that the API accepts what the workers can run.
    ``telemetry`` is the process's (``spane dev`` shares it between its services); by default one of its own.
    """
    known_types = {**(plugin_node_types(settings) if node_types is None else node_types), **BUILTIN_NODE_TYPES}
    telemetry = telemetry if telemetry is not None else Telemetry.from_env()
    metrics = HttpMetrics(telemetry.metrics.registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_dependencies(settings, known_types, metrics, telemetry) as deps:
            app.state.deps = deps
            yield

    token = settings.api_token.get_secret_value() if settings.api_token else None
    api = Router(
        "/api",
        middleware=[DefineMiddleware(ApiGuard, token=token, bind_host=settings.host)],
        security=[{"bearer": []}] if token else None,
        route_handlers=[
            Router(
                "/workflows",
                route_handlers=with_options([*workflows.HANDLERS, *execution_options.WORKFLOW_HANDLERS]),
                tags=["workflows"],
            ),
            Router(
                "/executions",
                route_handlers=with_options(
                    [*executions.HANDLERS, *events.EXECUTION_HANDLERS, *execution_options.EXECUTION_HANDLERS]
                ),
                tags=["executions"],
            ),
            Router("/events", route_handlers=with_options(events.HANDLERS), tags=["events"]),
            Router("/schedules", route_handlers=with_options(schedules.HANDLERS), tags=["schedules"]),
            Router("/", route_handlers=with_options(limits.HANDLERS), tags=["limits"]),
            Router("/dlq", route_handlers=with_options(dlq.HANDLERS), tags=["dead-letter queue"]),
        ],
    )
    # Webhooks are open (a trigger's secret guards each), so they sit beside the guarded router.
    hooks = Router("/api/webhooks", route_handlers=webhooks.HANDLERS, tags=["webhooks"])
    return Litestar(
        route_handlers=[api, hooks, *with_options(health.HANDLERS), console_router()],
        lifespan=[lifespan],
        dependencies={"deps": Provide(_dependencies, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        middleware=[DefineMiddleware(MetricsMiddleware, metrics=metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="SPANE",
            version=_version(),
            path="/schema",
            # The documents only: Litestar's HTML renderers (Redoc, Swagger, ...) load their scripts from other
            # sites, which would then run on the console's origin, beside its token.
            render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        ),
        debug=False,
        logging_config=None,  # the process configures logging once (spane.cli), for every service alike
    )


def begin_stopping(app: Litestar) -> None:
    """The server begins to stop (it takes no new connection): calls held for an execution's end answer now (202)
    and event streams end."""
    deps = getattr(app.state, "deps", None)
    if deps is not None:
        deps.hub.stop()
