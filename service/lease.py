"""Model ownership between learner processes: one Redis lease per model.

A learner owns a model while ``<prefix>:lease:<name>`` holds its token: taken with
``SET key token NX PX ttl``, renewed (``PEXPIRE``) and released (``DEL``) only by a Lua
compare-and-set on the token, so a learner can never extend or drop a lease another one holds.
The token is also the *fence*: the Redis store checks it atomically on every log append and
checkpoint write (``RedisStore.fences``), so a learner that lost its lease — paused, partitioned,
too slow to renew — has its writes rejected and steps down instead of forking the model's history.
"""

from __future__ import annotations

import os
import socket
import uuid

from redis.exceptions import RedisError

from service.stores.base import StoreError
from service.stores.redis_store import RedisStore

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def owner_id() -> str:
    """Who holds a lease, for humans reading Redis: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    """Take, renew and release model leases in the store's Redis."""

    def __init__(self, store: RedisStore, ttl_seconds: float, owner: str | None = None):
        self.store = store
        self.ttl_ms = max(int(ttl_seconds * 1000), 1)
        self.owner = owner or owner_id()
        self._renew = store.redis.register_script(_RENEW)
        self._release = store.redis.register_script(_RELEASE)

    async def acquire(self, name: str) -> str | None:
        """The new token if the model's lease was free, else None."""
        token = f"{self.owner}:{uuid.uuid4().hex}"
        try:
            taken = await self.store.redis.set(self.store.lease_key(name), token, nx=True, px=self.ttl_ms)
        except RedisError as exc:
            raise StoreError(f"lease of {name!r}: {exc}") from exc
        return token if taken else None

    async def renew(self, name: str, token: str) -> bool:
        """Extend the lease by a full ttl; False if it expired or another learner holds it now."""
        try:
            return bool(await self._renew(keys=[self.store.lease_key(name)], args=[token, self.ttl_ms],
                                          client=self.store.redis))
        except RedisError as exc:
            raise StoreError(f"lease of {name!r}: {exc}") from exc

    async def release(self, name: str, token: str) -> bool:
        """Give the lease up (graceful shutdown, model deleted) so a standby takes over at once."""
        try:
            return bool(await self._release(keys=[self.store.lease_key(name)], args=[token], client=self.store.redis))
        except RedisError as exc:
            raise StoreError(f"lease of {name!r}: {exc}") from exc

    async def holder(self, name: str) -> str | None:
        try:
            value = await self.store.redis.get(self.store.lease_key(name))
        except RedisError as exc:
            raise StoreError(f"lease of {name!r}: {exc}") from exc
        return value.decode() if value is not None else None
