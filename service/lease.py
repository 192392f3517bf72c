"""Model ownership between learner processes: one Redis lease per model.

A learner owns a model while ``<prefix>:lease:<name>`` holds its token: taken with
``SET key token NX PX ttl``, renewed (``PEXPIRE``) and released (``DEL``) only by a Lua
compare-and-set on the token, so a learner can never extend or drop a lease another one holds.
The token is also the *fence*: the Redis store checks it atomically on every log append and
checkpoint write (``RedisStore.fences``), so a learner that lost its lease — paused, partitioned,
too slow to renew — has its writes rejected and steps down instead of forking the model's history.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

import redis
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


log = logging.getLogger("hebb.lease")


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


class LeaseRenewer(threading.Thread):
    """Renews the held leases every ``ttl/3`` from its own thread with its own synchronous client.

    Not on the event loop: a loop stalled for seconds (a burst of requests, a multi-MB checkpoint
    being hashed and sent, an overloaded machine) must not let a healthy learner's lease lapse.
    The event loop reads :meth:`lost` and :meth:`seconds_since_renewal` and steps down."""

    def __init__(self, store: RedisStore, ttl_seconds: float):
        super().__init__(name="hebb-lease-renewer", daemon=True)
        self.key = store.lease_key
        self.ttl_ms = max(int(ttl_seconds * 1000), 1)
        self.interval = ttl_seconds / 3
        self._client = redis.Redis.from_url(store.client_url, socket_timeout=self.interval,
                                            socket_connect_timeout=self.interval)
        self._renew = self._client.register_script(_RENEW)
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}         # name -> token
        self._renewed: dict[str, float] = {}    # name -> monotonic time of the last successful renewal
        self._lost: set[str] = set()
        self._halt = threading.Event()

    def hold(self, name: str, token: str) -> None:
        with self._lock:
            self._held[name] = token
            self._renewed[name] = time.monotonic()
            self._lost.discard(name)

    def drop(self, name: str) -> None:
        with self._lock:
            self._held.pop(name, None)
            self._renewed.pop(name, None)
            self._lost.discard(name)

    def lost(self) -> set[str]:
        """Held leases found taken over or expired (renewal refused)."""
        with self._lock:
            return set(self._lost)

    def seconds_since_renewal(self, name: str) -> float:
        with self._lock:
            at = self._renewed.get(name)
        return time.monotonic() - at if at is not None else 0.0

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(self.interval + 1.0)
        self._client.close()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            with self._lock:
                held = list(self._held.items())
            for name, token in held:
                try:
                    renewed = bool(self._renew(keys=[self.key(name)], args=[token, self.ttl_ms]))
                except RedisError as exc:       # keep trying; the ttl decides when it is too late
                    log.warning("lease renewal failed", extra={"model": name, "error": str(exc)})
                    continue
                with self._lock:
                    if self._held.get(name) != token:
                        continue                # dropped or re-taken meanwhile
                    if renewed:
                        self._renewed[name] = time.monotonic()
                    else:
                        self._lost.add(name)
