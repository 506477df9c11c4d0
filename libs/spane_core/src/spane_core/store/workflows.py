"""The workflow registry in Redis: immutable versions of definitions, webhook paths, and registry events."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from spane_core import codec
from spane_core.definition import Workflow, WorkflowDefinition
from spane_core.errors import ConcurrencyError, NotFound
from spane_core.ids import WorkflowId
from spane_core.keys import WorkflowKeys as K
from spane_core.store.scripts import LuaScript
from spane_core.validation import canonical_json
from spane_core.workflow_events import WorkflowDeleted, WorkflowRegistered


def webhook_paths(definition: WorkflowDefinition) -> list[str]:
    return [normalize_path(str(t.config.get("path", ""))) for t in definition.triggers if t.type == "webhook"]


def normalize_path(path: str) -> str:
    return path.strip("/")


class WorkflowRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._register = LuaScript("register")
        self._delete = LuaScript("delete")
        self._cache: dict[tuple[str, int], Workflow] = {}
        # One read per version in flight: the first tasks of a new version arrive hundreds at once.
        self._loading: dict[tuple[str, int], asyncio.Future[Workflow]] = {}

    async def register(self, definition: WorkflowDefinition, now: int) -> tuple[int, bool]:
        """Store ``definition`` as a new version; returns (version, created). Identical to the latest: not created."""
        body = canonical_json(definition)
        digest = hashlib.sha256(body).hexdigest()
        paths = sorted(set(webhook_paths(definition)))
        scheduled = "1" if any(t.type == "schedule" for t in definition.triggers) else "0"
        for _ in range(32):
            latest = int(await self.redis.hget(K.latest, definition.id) or 0)
            event = WorkflowRegistered(
                workflow_id=definition.id,
                version=latest + 1,
                name=definition.name,
                definition=msgspec.json.decode(body),
                at=now,
            )
            keys = [K.definitions, K.latest, K.digests, K.deleted, K.webhooks, K.events, K.hook_paths, K.schedules]
            args: list[Any] = [definition.id, latest, digest, body, codec.encode(event), scheduled, len(paths), *paths]
            status, value = await self._register(self.redis, keys, args)
            match int(status):
                case 1:
                    return int(value), True
                case 2:
                    return int(value), False
        raise ConcurrencyError(f"workflow {definition.id!r} is being registered concurrently; try again")

    async def latest_version(self, workflow_id: str) -> int | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.sismember(K.deleted, workflow_id)
        pipe.hget(K.latest, workflow_id)
        deleted, value = await pipe.execute()
        return None if deleted or value is None else int(value)

    async def get(self, workflow_id: WorkflowId, version: int | None = None) -> Workflow:
        """A version of a workflow (the latest when ``version`` is None). Deleted workflows keep their versions."""
        if version is None:
            version = await self.latest_version(workflow_id)
            if version is None:
                raise NotFound(f"workflow {workflow_id!r} not found")
        key = (workflow_id, version)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        future: asyncio.Future[Workflow] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            body = await self.redis.hget(K.definitions, f"{workflow_id}@{version}")
            if body is None:
                raise NotFound(f"workflow {workflow_id!r} has no version {version}")
            workflow = Workflow(msgspec.json.decode(body, type=WorkflowDefinition), version)
            self._cache[key] = workflow
            future.set_result(workflow)
            return workflow
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
            future.exception()  # retrieved: no other reader may be waiting
            raise
        finally:
            del self._loading[key]

    async def delete(self, workflow_id: str, now: int) -> bool:
        event = WorkflowDeleted(workflow_id=WorkflowId(workflow_id), at=now)
        keys = [K.latest, K.deleted, K.webhooks, K.events, K.hook_paths, K.schedules]
        return int(await self._delete(self.redis, keys, [workflow_id, codec.encode(event)])) == 1

    async def webhook_listeners(self, path: str) -> list[WorkflowId]:
        """The workflows whose latest version has a webhook trigger on ``path``, in registration order."""
        # The client does not decode responses, so redis-py's ``bytes | str`` is bytes here.
        owners = cast(bytes | None, await self.redis.hget(K.webhooks, normalize_path(path)))
        return [] if owners is None else [WorkflowId(o) for o in owners.decode().split("\n") if o]

    async def scheduled(self) -> dict[WorkflowId, int]:
        """The workflows whose latest version has schedule triggers, with that version."""
        found = cast(dict[bytes, bytes], await self.redis.hgetall(K.schedules))
        return {WorkflowId(k.decode()): int(v) for k, v in found.items()}
