"""Why a node may wait without spending an attempt: the reasons of a ``node.waiting`` that defers a node.

A deferred node keeps its attempt; its timer queues the same attempt again when due (``decide_deferral``).
"""

from __future__ import annotations

CIRCUIT_BREAKER = "circuit-breaker"  # its breaker is open, or half-open with its one probe out
RATE_LIMIT = "rate-limit"  # its token bucket reserved it a later turn
CONCURRENCY_LIMIT = "concurrency-limit"  # its node type runs as many nodes as it may, across all workers

DEFER_REASONS = frozenset({CIRCUIT_BREAKER, RATE_LIMIT, CONCURRENCY_LIMIT})
