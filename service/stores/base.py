"""The store interface: where the service keeps its model registry, the durable per-model event
log and the checkpoints. Every backend (embedded memory/file store, Redis) implements :class:`Store`.

Contract (both the service and the durability layer rely on it):

* registry — :meth:`Store.save_model` / :meth:`Store.delete_model` / :meth:`Store.list_models`
  keep one :class:`ModelRecord` per model name (what is needed to re-create the model).
* log — :meth:`Store.append` durably stores one encoded event (see ``service.events``) and returns
  its log id; it is awaited BEFORE a learn/feedback request is acknowledged. Log ids are strings
  ``"<major>-<minor>"`` of non-negative integers (the Redis stream id shape), strictly increasing
  per model; compare them with :func:`log_id_key`. :meth:`Store.read_log` yields ``(log_id, event)``
  in append order after a given id; :meth:`Store.trim_log` drops entries up to an id (inclusive),
  used once a checkpoint covers them.
* checkpoints — :meth:`Store.save_checkpoint` stores an opaque blob with its :class:`CheckpointMeta`
  and keeps the newest :data:`CHECKPOINTS_KEPT`; "latest" moves only after the blob is complete, so a
  crash mid-save leaves the previous checkpoint as the latest. :meth:`Store.load_checkpoint` verifies
  the sha256 checksum and raises :class:`CorruptCheckpoint` on a mismatch.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator

from model.config import NetworkConfig, make_config

CHECKPOINTS_KEPT = 3


class StoreError(RuntimeError):
    """The store failed or is unreachable."""


class CheckpointNotFound(StoreError, KeyError):
    """No checkpoint with that id for that model."""


class CorruptCheckpoint(StoreError):
    """A checkpoint blob does not match its recorded checksum or size."""


class Fenced(StoreError):
    """A write by a learner whose lease on the model was taken over: rejected, nothing written."""


def log_id_key(log_id: str) -> tuple[int, int]:
    """Sort key of a log id ``"<major>-<minor>"``.

    >>> log_id_key("12-3") < log_id_key("12-10") < log_id_key("13-0")
    True
    """
    major, _, minor = log_id.partition("-")
    try:
        return int(major), int(minor or 0)
    except ValueError as exc:
        raise ValueError(f"malformed log id {log_id!r}") from exc


def checksum(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def stored_blob(blob: bytes | memoryview) -> bytes | memoryview:
    """A checkpoint blob to keep: bytes and read-only buffers as they are (a checkpoint's buffer
    is tens of MB; copying it would hold the GIL and stall requests), anything else copied."""
    if isinstance(blob, bytes) or (isinstance(blob, memoryview) and blob.readonly):
        return blob
    return bytes(blob)


async def stored_blob_and_checksum(blob: bytes | memoryview) -> tuple[bytes | memoryview, str]:
    """:func:`stored_blob` and its checksum, hashed on a worker thread (tens of MB: not on the
    event loop)."""
    blob = stored_blob(blob)
    return blob, await asyncio.to_thread(checksum, blob)


def verified_blob(blob: bytes, meta: "CheckpointMeta", name: str) -> bytes:
    """``blob`` if it matches its checkpoint's recorded size and sha256, else :class:`CorruptCheckpoint`."""
    if len(blob) != meta.size or checksum(blob) != meta.checksum:
        raise CorruptCheckpoint(f"checkpoint {name}/{meta.id} is corrupt (size or sha256 mismatch)")
    return blob


# Records stored before they kept their full network config name only a preset, so they mean the
# preset as it was defined then. Presets whose definition changed since, and where the earlier
# definition lives now: "mnist" had 384/768 units in layers 2/3 until 2026-11-27. (It changed again
# later that day, to layer 1 pooled 3x3; records of that time keep their network.)
PRESETS_OF_UNVERSIONED_RECORDS = {"mnist": "mnist-wide"}


def _unversioned_network(preset: str, config: dict[str, Any]) -> dict[str, Any]:
    """The network a record without one was created with (raises if it no longer resolves)."""
    return make_config(PRESETS_OF_UNVERSIONED_RECORDS.get(preset, preset), config or None).model_dump(mode="json")


@dataclass(frozen=True)
class ModelRecord:
    """What re-creates a model: its name, preset, config overrides and seed, and the full network
    config they resolved to when the model was created (``network``, filled in from the current
    presets if not given): presets may be redefined later, a model's network may not."""

    name: str
    preset: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    created_at: float = field(default_factory=time.time)
    network: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.network is None:
            object.__setattr__(self, "network", make_config(self.preset, self.config or None).model_dump(mode="json"))

    def network_config(self) -> NetworkConfig:
        if not self.network:   # an old record whose preset or overrides no longer resolve: say why
            _unversioned_network(self.preset, self.config)
        return NetworkConfig.model_validate(self.network)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelRecord":
        config = dict(d.get("config") or {})
        network = d.get("network")
        if network is None:   # stored before records kept their network: the preset as defined then
            try:
                network = _unversioned_network(d["preset"], config)
            except ValueError:   # listing the registry must not fail on one bad record: using it will
                network = {}
        return cls(name=d["name"], preset=d["preset"], config=config, seed=int(d.get("seed", 0)),
                   created_at=float(d.get("created_at", 0.0)), network=network)


@dataclass(frozen=True)
class CheckpointMeta:
    """Describes one stored checkpoint. ``step`` is the model's samples_seen at capture and
    ``last_log_id`` the newest log entry the checkpoint includes (None: none yet)."""

    id: str
    step: int
    last_log_id: str | None
    config_digest: str
    created_at: float
    size: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckpointMeta":
        return cls(id=str(d["id"]), step=int(d["step"]), last_log_id=d.get("last_log_id"),
                   config_digest=str(d["config_digest"]), created_at=float(d["created_at"]),
                   size=int(d["size"]), checksum=str(d["checksum"]))


class Store(ABC):
    """Async store (redis-py asyncio style). All methods may raise :class:`StoreError`."""

    #: the URL the store was opened from (for logs and /readyz)
    url: str = ""

    # ----------------------------------------------------------------- lifecycle
    @abstractmethod
    async def open(self) -> None:
        """Connect / create directories. Called once before any other method."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and release resources."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers."""

    # ----------------------------------------------------------------- registry
    @abstractmethod
    async def save_model(self, record: ModelRecord) -> None:
        """Create or replace the record for ``record.name``."""

    @abstractmethod
    async def delete_model(self, name: str) -> bool:
        """Remove the record, its log and its checkpoints; False if there was no record."""

    @abstractmethod
    async def list_models(self) -> list[ModelRecord]:
        """All records, ordered by creation time."""

    # ----------------------------------------------------------------- durable log
    @abstractmethod
    async def append(self, name: str, event: bytes) -> str:
        """Durably append one encoded event; return its log id."""

    @abstractmethod
    def read_log(self, name: str, after: str | None = None) -> AsyncIterator[tuple[str, bytes]]:
        """Yield ``(log_id, event)`` in append order, only entries with id > ``after``."""

    @abstractmethod
    async def trim_log(self, name: str, upto: str) -> int:
        """Drop entries with id <= ``upto``; return how many were dropped."""

    # ----------------------------------------------------------------- checkpoints
    @abstractmethod
    async def save_checkpoint(self, name: str, blob: bytes, *, step: int, last_log_id: str | None,
                              config_digest: str) -> CheckpointMeta:
        """Store a complete blob, then make it the latest; keep the newest CHECKPOINTS_KEPT."""

    @abstractmethod
    async def list_checkpoints(self, name: str) -> list[CheckpointMeta]:
        """The model's checkpoints, newest first."""

    @abstractmethod
    async def load_checkpoint(self, name: str, checkpoint_id: str) -> bytes:
        """The blob; raises CheckpointNotFound or CorruptCheckpoint."""

    @abstractmethod
    async def delete_checkpoints(self, name: str) -> int:
        """Remove every checkpoint of the model; return how many."""

    async def trimmed_through(self, name: str) -> str | None:
        """The id through which the log was trimmed (None: never). Recovery needs it to tell a
        complete replay from one with a gap (a fallback checkpoint older than the trim point)."""
        return None

    # ----------------------------------------------------------------- helpers shared by backends
    async def latest_checkpoint(self, name: str) -> CheckpointMeta | None:
        checkpoints = await self.list_checkpoints(name)
        return checkpoints[0] if checkpoints else None

    async def __aenter__(self) -> "Store":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
