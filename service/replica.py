"""What a learner publishes for predictors, and how predictors read it.

A full checkpoint of the default ``mnist`` preset is dominated by the streaming readout's Gram
matrix: too heavy to ship every second to every predictor. Predictions need much less: the
competitive layers and the readout *weights*. The *serving state* is the engine's
``state_dict(serving=True)``, encoded with ``model.encode_state`` (checksummed, pickle-free); the
network a predictor rebuilds from it predicts exactly what the learner's own snapshot predicts.

Redis keys (under the store prefix)::

    <p>:serving:<name>         the latest serving-state blob of the model
    <p>:serving-step:<name>    its step (samples learned), for cheap polling
    channel <p>:published      one JSON message {"model", "step"} per publication (pub/sub)

The learner publishes through a Lua script that first checks the model's lease token, so a
deposed learner cannot overwrite what predictors serve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.exceptions import RedisError

from model import Network, decode_state, encode_state
from service.stores.base import Fenced, ModelRecord, StoreError
from service.stores.redis_store import RedisStore

_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease of this model is held by another learner')
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


def encode_serving(net: Network) -> bytes:
    """The serving-state blob of ``net`` (call on its learner thread, or on a snapshot-consistent copy)."""
    return encode_state(net.state_dict(serving=True))


class ReplicaBuilder:
    """Builds prediction replicas of one model from serving blobs."""

    def __init__(self, record: ModelRecord):
        self.record = record
        self.config = record.network_config()

    def fresh(self) -> Network:
        return Network(self.config, self.record.seed, self.record.preset)

    def build(self, blob: bytes) -> Network:
        """A network predicting like the learner that published ``blob``; StateError/ValueError if unusable."""
        published = decode_state(blob)
        if not published.get("serving"):
            raise ValueError(f"blob of {self.record.name!r} is not a serving state")
        net = Network.from_state(published)   # checks config, shapes, dtypes
        if net.config.digest() != self.config.digest():
            raise ValueError(f"serving state of {self.record.name!r} was published for another config")
        return net


@dataclass(frozen=True)
class Keys:
    blob: str
    step: str


class ServingChannel:
    """Publish (learner) and fetch (predictor) serving states in the store's Redis."""

    def __init__(self, store: RedisStore):
        self.store = store
        self.channel = store.key("published")
        self._publish = store.redis.register_script(_PUBLISH)

    def keys(self, name: str) -> Keys:
        return Keys(self.store.key("serving", name), self.store.key("serving-step", name))

    async def publish(self, name: str, token: str, blob: bytes, step: int) -> None:
        """Store the blob and announce it, if ``token`` still holds the model's lease (else :class:`Fenced`)."""
        keys = self.keys(name)
        message = json.dumps({"model": name, "step": step})
        try:
            await self._publish(keys=[self.store.lease_key(name), keys.blob, keys.step],
                                args=[token, blob, step, self.channel, message], client=self.store.redis)
        except RedisError as exc:
            if "FENCED" in str(exc):
                raise Fenced(f"model {name!r}: publish rejected, this learner no longer holds the lease") from exc
            raise StoreError(f"publish of {name!r}: {exc}") from exc

    async def step(self, name: str) -> int | None:
        try:
            value = await self.store.redis.get(self.keys(name).step)
        except RedisError as exc:
            raise StoreError(f"serving step of {name!r}: {exc}") from exc
        return int(value) if value is not None else None

    async def fetch(self, name: str) -> bytes | None:
        try:
            return await self.store.redis.get(self.keys(name).blob)
        except RedisError as exc:
            raise StoreError(f"serving state of {name!r}: {exc}") from exc

    async def forget(self, name: str) -> None:
        """Drop a deleted model's published state."""
        keys = self.keys(name)
        try:
            await self.store.redis.delete(keys.blob, keys.step)
        except RedisError as exc:
            raise StoreError(f"serving state of {name!r}: {exc}") from exc


def decode_message(data: bytes | str) -> tuple[str, int] | None:
    """``(model, step)`` of a pub/sub message, None if malformed (ignored)."""
    try:
        message = json.loads(data)
        return str(message["model"]), int(message["step"])
    except (ValueError, KeyError, TypeError):
        return None

