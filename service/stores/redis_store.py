"""Production store on Redis (``redis://host:port/db``): registry hash, one stream per model as the
durable log, checkpoint blobs written with their index in one MULTI/EXEC transaction.

Keys (``<p>`` is the key prefix, ``hebb`` unless the URL has ``?prefix=...``)::

    <p>:models                    hash   model name -> ModelRecord JSON
    <p>:log:<name>                stream one entry per event, field "e" = encoded event
    <p>:trimmed:<name>            string id through which the log was trimmed
    <p>:ckpt:<name>:<id>          string checkpoint blob
    <p>:ckpt-index:<name>         string JSON metadata of the kept checkpoints, newest first
                                         (the "latest" pointer)
    <p>:ckpt-seq:<name>           string checkpoint id counter
    <p>:lease:<name>              string lease token of the learner that owns the model (service.lease)

Fencing: when ``fences[name]`` holds a lease token (learner role), appends and checkpoint writes of
that model succeed only while ``<p>:lease:<name>`` still holds that token (checked atomically in the
append script, and by WATCH in the checkpoint transaction); otherwise they raise :class:`Fenced`.

Durability of an acknowledged append is Redis's: run it with ``appendonly yes`` and
``appendfsync always`` (or ``everysec``, accepting up to a second of loss on a power cut).

Commands are not retried by the client: a retried ``XADD`` whose first reply was lost would log an
event twice. A failed command raises :class:`StoreError`; the service answers 503 and the client retries.
"""

from __future__ import annotations

import json
import logging
import time
from typing import AsyncIterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from service.stores.base import (CHECKPOINTS_KEPT, CheckpointMeta, CheckpointNotFound,
                                 Fenced, ModelRecord, Store, StoreError, log_id_key,
                                 stored_blob_and_checksum, verified_blob)

log = logging.getLogger("hebb.store.redis")

_READ_BATCH = 64  # stream entries per XRANGE round trip during replay

# XADD only for a registered model, so a late append cannot resurrect a deleted model's log, and
# (fenced) only while the lease still holds the writer's token
_APPEND_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('NOMODEL model is not in the registry')
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return redis.error_reply('FENCED the lease of this model is held by another learner')
end
return redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
"""


def _next_id(log_id: str) -> str:
    major, minor = log_id_key(log_id)
    return f"{major}-{minor + 1}"


class RedisStore(Store):
    # an 86 MB checkpoint SET took 3 s on a busy 2-core machine: leave room (URL ?socket_timeout= overrides)
    def __init__(self, url: str, socket_timeout: float = 15.0):
        parts = urlsplit(url)
        options = parse_qs(parts.query)
        self.prefix = options.pop("prefix", ["hebb"])[0]
        self.url = url
        self._client_url = urlunsplit(parts._replace(query="&".join(f"{k}={v[0]}" for k, v in options.items())))
        self._socket_timeout = socket_timeout
        self._redis: aioredis.Redis | None = None
        self._append = None
        # model name -> lease token this process writes under (learner role; empty: no fencing)
        self.fences: dict[str, str] = {}

    # ----------------------------------------------------------------- keys
    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def _models_key(self) -> str:
        return self._k("models")

    def _log_key(self, name: str) -> str:
        return self._k("log", name)

    def _index_key(self, name: str) -> str:
        return self._k("ckpt-index", name)

    def _blob_key(self, name: str, checkpoint_id: str) -> str:
        return self._k("ckpt", name, checkpoint_id)

    def key(self, *parts: str) -> str:
        """A key under this store's prefix (for the role machinery: leases, published serving state)."""
        return self._k(*parts)

    def lease_key(self, name: str) -> str:
        return self._k("lease", name)

    @property
    def client_url(self) -> str:
        """The Redis URL without the store's own options (for a second, synchronous client)."""
        return self._client_url

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreError(f"store {self.url} is not open")
        return self._redis

    # ----------------------------------------------------------------- lifecycle
    async def open(self) -> None:
        self._redis = aioredis.Redis.from_url(
            self._client_url, socket_timeout=self._socket_timeout, socket_connect_timeout=self._socket_timeout,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, decode_responses=False)
        self._append = self._redis.register_script(_APPEND_SCRIPT)
        # an unreachable Redis is not fatal: recovery waits for it and writes answer 503 meanwhile
        if not await self.ping():
            log.warning("Redis is not reachable yet; the service will keep retrying", extra={"store": self.url})

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, StoreError, OSError):
            return False

    async def _call(self, awaitable):
        try:
            return await awaitable
        except RedisError as exc:
            raise StoreError(f"Redis at {self.url}: {exc}") from exc

    # ----------------------------------------------------------------- registry
    async def save_model(self, record: ModelRecord) -> None:
        await self._call(self.redis.hset(self._models_key, record.name, json.dumps(record.to_dict(), sort_keys=True)))

    async def delete_model(self, name: str) -> bool:
        async def run() -> bool:
            ids = [m.id for m in await self.list_checkpoints(name)]
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._models_key, name)
                pipe.delete(self._log_key(name), self._k("trimmed", name), self._index_key(name),
                            self._k("ckpt-seq", name), self.lease_key(name), *(self._blob_key(name, i) for i in ids))
                removed, _ = await pipe.execute()
            return bool(removed)

        return await self._call(run())

    async def list_models(self) -> list[ModelRecord]:
        raw = await self._call(self.redis.hgetall(self._models_key))
        records = [ModelRecord.from_dict(json.loads(v)) for v in raw.values()]
        return sorted(records, key=lambda r: (r.created_at, r.name))

    # ----------------------------------------------------------------- log
    async def append(self, name: str, event: bytes) -> str:
        try:
            log_id = await self._append(keys=[self._models_key, self._log_key(name), self.lease_key(name)],
                                        args=[name, bytes(event), self.fences.get(name, "")], client=self.redis)
        except RedisError as exc:
            if "NOMODEL" in str(exc):
                raise StoreError(f"model {name!r} is not in the registry") from exc
            if "FENCED" in str(exc):
                raise Fenced(f"model {name!r}: append rejected, this learner no longer holds the lease") from exc
            raise StoreError(f"Redis at {self.url}: {exc}") from exc
        return log_id.decode()

    async def read_log(self, name: str, after: str | None = None) -> AsyncIterator[tuple[str, bytes]]:
        start = f"({after}" if after is not None else "-"
        while True:
            entries = await self._call(self.redis.xrange(self._log_key(name), start, "+", count=_READ_BATCH))
            if not entries:
                return
            for raw_id, fields in entries:
                yield raw_id.decode(), fields[b"e"]
            start = f"({entries[-1][0].decode()}"

    async def trim_log(self, name: str, upto: str) -> int:
        async def run() -> int:
            async with self.redis.pipeline(transaction=True) as pipe:
                # MINID drops ids strictly below its argument: the id just after ``upto`` makes it inclusive
                pipe.xtrim(self._log_key(name), minid=_next_id(upto), approximate=False)
                pipe.set(self._k("trimmed", name), upto)
                dropped, _ = await pipe.execute()
            return int(dropped)

        current = await self.trimmed_through(name)
        if current is not None and log_id_key(current) >= log_id_key(upto):
            return 0
        return await self._call(run())

    async def trimmed_through(self, name: str) -> str | None:
        value = await self._call(self.redis.get(self._k("trimmed", name)))
        return value.decode() if value is not None else None

    # ----------------------------------------------------------------- checkpoints
    async def save_checkpoint(self, name: str, blob: bytes, *, step: int, last_log_id: str | None,
                              config_digest: str) -> CheckpointMeta:
        blob, digest = await stored_blob_and_checksum(blob)

        async def run() -> CheckpointMeta:
            if not await self.redis.hexists(self._models_key, name):
                raise StoreError(f"model {name!r} is not in the registry")
            number = await self.redis.incr(self._k("ckpt-seq", name))
            meta = CheckpointMeta(id=f"{number:010d}", step=int(step), last_log_id=last_log_id,
                                  config_digest=config_digest, created_at=time.time(), size=len(blob),
                                  checksum=digest)
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(self._index_key(name), self.lease_key(name))
                        token = self.fences.get(name)
                        if token is not None and await pipe.get(self.lease_key(name)) != token.encode():
                            raise Fenced(f"model {name!r}: checkpoint rejected, this learner no longer holds the lease")
                        raw = await pipe.get(self._index_key(name))
                        old = [CheckpointMeta.from_dict(d) for d in json.loads(raw)] if raw else []
                        kept = [meta, *old][:CHECKPOINTS_KEPT]
                        dropped = [m.id for m in old if m not in kept]
                        # blob and index in one transaction: "latest" never names an incomplete blob
                        pipe.multi()
                        pipe.set(self._blob_key(name, meta.id), blob)
                        pipe.set(self._index_key(name), json.dumps([m.to_dict() for m in kept]))
                        if dropped:
                            pipe.delete(*(self._blob_key(name, i) for i in dropped))
                        await pipe.execute()
                        return meta
                    except WatchError:
                        continue  # a concurrent save moved the index (or a renewal touched the lease): redo

        return await self._call(run())

    async def list_checkpoints(self, name: str) -> list[CheckpointMeta]:
        raw = await self._call(self.redis.get(self._index_key(name)))
        return [CheckpointMeta.from_dict(d) for d in json.loads(raw)] if raw else []

    async def load_checkpoint(self, name: str, checkpoint_id: str) -> bytes:
        meta = next((m for m in await self.list_checkpoints(name) if m.id == checkpoint_id), None)
        blob = await self._call(self.redis.get(self._blob_key(name, checkpoint_id))) if meta else None
        if meta is None or blob is None:
            raise CheckpointNotFound(f"no checkpoint {checkpoint_id!r} for model {name!r}")
        return verified_blob(blob, meta, name)

    async def delete_checkpoints(self, name: str) -> int:
        async def run() -> int:
            ids = [m.id for m in await self.list_checkpoints(name)]
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._index_key(name), *(self._blob_key(name, i) for i in ids))
                await pipe.execute()
            return len(ids)

        return await self._call(run())
