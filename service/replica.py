"""What a learner publishes for predictors, and how predictors read it.

A full checkpoint of the default ``mnist`` preset is ~46 MB (the streaming readout's 4481² Gram
matrix, lower triangle, is 40 MB of it) and takes ~0.35 s to encode: too heavy to ship every second
to every predictor. Predictions need much less: the competitive layers and the readout *weights*
(~1 MB for ``mnist``). The *serving state* is the network's ``state_dict`` without the readout's learning-only arrays,
encoded with ``model.encode_state`` (checksummed, pickle-free). A predictor lays it over a fresh
network of the same config, so it predicts exactly what the learner's own snapshot predicts.

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
from typing import Any

from redis.exceptions import RedisError

from model import Network, decode_state, encode_state, make_config
from service.stores.base import Fenced, ModelRecord, StoreError
from service.stores.redis_store import RedisStore

# readout arrays used only to *learn* the weights (Gram matrix, cross-correlation, sample buffer);
# prediction reads the layers and readout.weights. A test checks replica == learner predictions.
LEARNING_ONLY_ARRAYS = frozenset({"readout.gram_lower", "readout.cross", "readout.buffer", "readout.buffer_labels"})

_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease of this model is held by another learner')
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


def serving_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a ``Network.state_dict()``) without the learning-only arrays."""
    arrays = {k: v for k, v in state["arrays"].items() if k not in LEARNING_ONLY_ARRAYS}
    return {**state, "arrays": arrays}


def encode_serving(state: dict[str, Any]) -> bytes:
    return encode_state(serving_state(state))


class ReplicaBuilder:
    """Builds prediction replicas of one model from serving blobs (reusing one template state)."""

    def __init__(self, record: ModelRecord):
        self.record = record
        self.config = make_config(record.preset, record.config or None)
        self._template: dict[str, Any] | None = None

    def fresh(self) -> Network:
        return Network(self.config, self.record.seed, self.record.preset)

    def build(self, blob: bytes) -> Network:
        """A network predicting like the learner that published ``blob``; StateError/ValueError if unusable."""
        published = decode_state(blob)
        if self._template is None:
            self._template = self.fresh().state_dict()
        arrays = dict(self._template["arrays"])
        unknown = set(published["arrays"]) - set(arrays)
        if unknown:
            raise ValueError(f"serving state of {self.record.name!r} has arrays {sorted(unknown)} its config lacks")
        arrays.update(published["arrays"])
        net = Network.from_state({**published, "arrays": arrays})   # checks config, shapes, dtypes
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

