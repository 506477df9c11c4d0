"""The one way a service opens Redis: a blocking connection pool sized from the settings.

redis-py's default pool raises ``MaxConnectionsError`` the moment its connections are all in use, and a worker
running hundreds of nodes at once reaches that easily; a task failing that way was left for the visibility
timeout to bring back, and its side effects ran twice. A blocking pool makes a caller wait for a connection
instead: the pool bounds how many connections a process opens, never whether its work gets done.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from spane_core.settings import Settings

# Each partition's reader holds a connection for the length of its blocking XREADGROUP; the rest is shared.
SHARED_CONNECTIONS = 16


def pool_size(settings: Settings) -> int:
    """Connections one service may open: the setting, and never fewer than its blocking readers need."""
    return max(settings.redis_max_connections, 2 * settings.partitions + SHARED_CONNECTIONS)


def open_redis(settings: Settings) -> Redis:
    """A client on ``settings.redis_url`` whose callers wait (up to ``redis_pool_timeout_s``) for a free
    connection rather than fail; a wait that times out raises ``redis.exceptions.ConnectionError``, a transient
    error the services retry."""
    if not settings.redis_url:
        raise ValueError("open_redis needs settings.redis_url")
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=pool_size(settings), timeout=settings.redis_pool_timeout_s
    )
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections
