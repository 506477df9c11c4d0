"""Every setting, read once from ``SPANE_*`` environment variables into one typed object."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from spane_core.limits import DEFAULT_MAX_EDGES, DEFAULT_MAX_NODES, DefinitionLimits
from spane_core.node_limits import settings_problems


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# How long an idempotency key names its execution: a client retrying a start later than this starts a new one.
IDEMPOTENCY_KEY_TTL_S = 24 * 3600


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPANE_", extra="ignore")

    redis_url: str | None = None  # unset: `spane dev` starts an embedded Redis under data_dir
    database_url: str | None = None  # unset: `spane dev` starts an embedded Postgres under data_dir
    data_dir: str = ".spane"
    partitions: int = Field(default=1, ge=1, le=1024)
    api_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    plugins: Annotated[list[str], NoDecode, BeforeValidator(_comma_list)] = Field(default_factory=list)
    consumer_name: str = Field(default_factory=_default_consumer)
    # A task whose worker has been silent this long is reclaimed by another worker.
    task_visibility_timeout_ms: int = Field(default=30_000, ge=100)
    # A task delivered this many times, each time to a worker that went silent, fails its try (WorkerLost).
    task_max_deliveries: int = Field(default=5, ge=1)
    worker_concurrency: int = Field(default=200, ge=1)
    worker_batch: int = Field(default=500, ge=1)
    # Processes that run the CPU-bound nodes (``@executor(..., cpu=True)``) of one worker; started on first use.
    worker_cpu_processes: int = Field(default=2, ge=1)
    # An event loop late by this much (a node blocking it) is logged with the nodes running on it.
    worker_loop_lag_warn_ms: int = Field(default=200, ge=1)
    # A node still running after this long has its start recorded at once; a quicker one with its result.
    worker_announce_after_ms: int = Field(default=50, ge=0)
    # Redis connections one service (one process of `spane dev`: each of its services) may open; callers wait for
    # a free one up to redis_pool_timeout_s. Never fewer than 2 per partition + 16 (the blocking readers).
    redis_max_connections: int = Field(default=64, ge=4)
    redis_pool_timeout_s: float = Field(default=30.0, gt=0)
    scheduler_interval_ms: int = Field(default=100, ge=5)
    # A node output or execution input whose JSON is larger is stored in Postgres; the log holds a reference.
    payload_inline_max: int = Field(default=51_200, ge=256)
    # Stored payloads that each process keeps in memory (bytes of JSON): a value passed along is fetched once.
    payload_cache_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # A completed or cancelled execution's log and snapshot stay in Redis this long once the projector has archived
    # them (reads then come from the read model); 0 keeps them forever. Longer than an idempotency key lives (a
    # day), so that a retried start still finds the execution it names.
    execution_retention_s: int = Field(default=7 * 24 * 3600, ge=0)
    # Finished executions are deleted for good (read models, archive, dead letters, what Redis still holds) this long
    # after they finished; 0 keeps them forever.
    history_retention_s: int = 0
    # The commit streams keep their entries this long after every projector has them, so that a client of
    # /api/events reconnecting with Last-Event-ID within it misses nothing; 0 trims them as soon as they are projected.
    events_resume_window_s: int = 60
    # Networks the http node may not connect to (CIDRs), and exceptions to that. The default denies link-local
    # addresses, where clouds serve instance metadata and credentials; a multi-tenant deployment adds its private
    # ranges (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, ::1/128, fc00::/7).
    http_deny: Annotated[list[str], NoDecode, BeforeValidator(_comma_list)] = Field(
        default_factory=lambda: ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32"]
    )
    http_allow: Annotated[list[str], NoDecode, BeforeValidator(_comma_list)] = Field(default_factory=list)
    # Where the worker finds the secrets that http nodes name as {{ $secrets.NAME }}: a file NAME in this directory
    # (a mounted Kubernetes Secret, Docker's /run/secrets), unless the environment has SPANE_SECRET_NAME.
    secrets_dir: str = ""
    # The most an http node reads of an answer's body (decompressed); a larger answer fails the node for good.
    http_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # The longest an http node's call may take, its answer read whole (httpx's timeouts bound each wait only, so an
    # answer trickling in a byte at a time would hold a worker's slot for ever).
    http_max_call_s: float = Field(default=300.0, gt=0)
    # Limits per node type, shared by every worker (JSON objects keyed by node type): a circuit breaker
    # ({"failureThreshold", "successThreshold", "timeoutMs"}), a rate limit ({"max", "perMs"}), and how many nodes
    # of the type may run at once across all workers. A node's own circuitBreaker / rateLimit add to these.
    circuit_breakers: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(default_factory=dict)
    rate_limits: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(default_factory=dict)
    concurrency_limits: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)
    # A node held back by a concurrency limit or a half-open breaker's probe looks again after this long, unless a
    # finishing node wakes it sooner.
    limit_poll_ms: int = Field(default=1000, ge=10)
    max_depth: int = 32
    # The most nodes and edges a workflow definition may have; a larger one is refused (422) naming the limit.
    max_nodes: int = Field(default=DEFAULT_MAX_NODES, ge=1)
    max_edges: int = Field(default=DEFAULT_MAX_EDGES, ge=0)
    max_body_bytes: int = 10 * 1024 * 1024
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case
    # "text" (the default) or "json": one JSON object per line, with executionId, nodeId, attempt and traceId.
    log_format: Literal["text", "json"] = "text"
    # A service run on its own serves its Prometheus metrics on this port (the API on its own /metrics too).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @property
    def definition_limits(self) -> DefinitionLimits:
        return DefinitionLimits(max_nodes=self.max_nodes, max_edges=self.max_edges)

    @field_validator("api_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # SPANE_API_TOKEN= (a variable set from an unset one, an empty Kubernetes Secret key) would leave the API
        # open without a word: refuse it, so that running without a token is always a choice.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty: give it a value, or unset SPANE_API_TOKEN to run without a token")
        return value

    @field_validator("http_deny", "http_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network (CIDR such as 10.0.0.0/8) or an address") from None
        return value

    @field_validator("execution_retention_s", "history_retention_s")
    @classmethod
    def _retention_outlives_idempotency_keys(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be 0 (keep forever) or a number of seconds")
        if 0 < value < IDEMPOTENCY_KEY_TTL_S:
            raise ValueError(
                f"must be 0 (keep forever) or at least {IDEMPOTENCY_KEY_TTL_S} s, how long an idempotency key names"
                " its execution: a retried start must find the execution, not begin it anew"
            )
        return value

    @field_validator("events_resume_window_s")
    @classmethod
    def _resume_window(cls, value: int) -> int:
        if value < 0:
            raise ValueError(
                "must be a number of seconds, 0 or more: how long the commit streams keep projected entries for"
                " clients of /api/events that reconnect (0: not at all)"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    @field_validator("circuit_breakers", "rate_limits", "concurrency_limits", mode="before")
    @classmethod
    def _limits(cls, value: object, info: Any) -> object:
        kind = {"circuit_breakers": "circuitBreaker", "rate_limits": "rateLimit"}.get(
            info.field_name, "concurrencyLimit"
        )
        if isinstance(value, str):  # from the environment: read here, so that bad JSON is named like any bad value
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"not JSON ({e}): a JSON object keyed by node type is expected") from None
        if isinstance(value, dict) and (problems := settings_problems(kind, value)):
            raise ValueError("; ".join(f"{p.path}: {p.message}" for p in problems))
        return value
