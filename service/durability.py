"""Durability policy on top of the store: exact startup recovery, the checkpoint scheduler, log trimming.

Recovery of one model (:meth:`Durability.recover`, the manager's recover hook):

1. walk its checkpoints newest first. A checkpoint whose bytes are damaged (store checksum, the
   payload's crc, the network blob's sha256) is skipped with a warning: the previous one is used
   and more of the log is replayed. A checkpoint that is intact but *incompatible* (another format
   version, another config than the model's registry record) is refused with
   :class:`IncompatibleCheckpoint` — loading it would silently change the model.
2. replay every log entry after the checkpoint's ``last_log_id``, exactly as the learner applied
   them (same order; ``learn_many`` is chunking-invariant, so merged events give identical state).
3. start the learner, mark the model ready.

If the store is unreachable, recovery waits and retries, so a service started before Redis comes
up recovers once it does (``/readyz`` stays 503 until then).

Checkpoints (:meth:`Durability.checkpoint`, the manager's checkpoint hook) are taken every
``every_samples`` samples or ``every_seconds`` seconds (whichever comes first, only if the model
changed), on demand (``POST /v1/models/{name}/checkpoints``) and at graceful shutdown. After each
one the log is trimmed through the *oldest* kept checkpoint — never past the newest — so falling
back to any kept checkpoint still finds every entry it needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from model import Network, StateError, decode_state
from service.events import CheckpointPayload, EventError, UnsupportedFormat, decode_checkpoint, decode_event
from service.stores.base import (CheckpointMeta, CheckpointNotFound, CorruptCheckpoint, ModelRecord, StoreError,
                                 log_id_key)

if TYPE_CHECKING:
    from service.manager import ModelManager

log = logging.getLogger("hebb.durability")

DEFAULT_EVERY_SAMPLES = 10_000
DEFAULT_EVERY_SECONDS = 60.0
# replay merges consecutive log events up to this many samples into one learn_many call
REPLAY_CHUNK_SAMPLES = 1024


class RecoveryError(RuntimeError):
    """A model cannot be restored exactly; the message says which model and why."""


class IncompatibleCheckpoint(RecoveryError):
    """An intact checkpoint of another format version or config: refused, never loaded."""


class CorruptState(ValueError):
    """Damaged checkpoint bytes (fall back to an older checkpoint)."""


@dataclass
class _ModelProgress:
    """What the scheduler knows about one model's last checkpoint."""
    step: int = 0
    at: float = field(default_factory=time.monotonic)
    retry_at: float = 0.0                 # after a failed checkpoint, wait before trying again
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Restored:
    net: Network
    seen_ids: list[str]
    last_log_id: str | None
    checkpoint: CheckpointMeta | None
    skipped: list[str]                    # ids of the corrupt checkpoints passed over


def restore_checkpoint(record: ModelRecord, meta: CheckpointMeta, blob: bytes, config_digest: str) -> Restored:
    """Decode one checkpoint blob of ``record``; :class:`CorruptState` or :class:`IncompatibleCheckpoint`."""
    where = f"checkpoint {meta.id} of model {record.name!r}"
    if meta.config_digest != config_digest:
        raise IncompatibleCheckpoint(f"{where} was made with config {meta.config_digest[:12]}, the model's "
                                     f"registry record has {config_digest[:12]}: refusing to load it")
    try:
        payload: CheckpointPayload = decode_checkpoint(blob)
    except UnsupportedFormat as exc:
        raise IncompatibleCheckpoint(f"{where}: {exc}") from exc
    except EventError as exc:
        raise CorruptState(f"{where}: {exc}") from exc
    try:
        state = decode_state(payload.network_state)
    except StateError as exc:   # decode_state fails only on damaged bytes
        raise CorruptState(f"{where}: {exc}") from exc
    try:
        net = Network.from_state(state)   # fails on another state version, config or array layout
    except (StateError, ValueError) as exc:
        raise IncompatibleCheckpoint(f"{where}: {exc}") from exc
    if net.config.digest() != config_digest:
        raise IncompatibleCheckpoint(f"{where} holds a network of another config than the model's record")
    if payload.last_log_id != meta.last_log_id:
        raise CorruptState(f"{where}: payload log position {payload.last_log_id} differs from its metadata "
                           f"{meta.last_log_id}")
    return Restored(net, payload.seen_ids, payload.last_log_id, meta, [])


async def load_newest_valid(store, record: ModelRecord, config_digest: str) -> Restored | None:
    """The newest checkpoint that restores, skipping damaged ones; None when none restores."""
    skipped = []
    for meta in await store.list_checkpoints(record.name):
        try:
            blob = await store.load_checkpoint(record.name, meta.id)
            restored = await asyncio.to_thread(restore_checkpoint, record, meta, blob, config_digest)
        except (CorruptCheckpoint, CheckpointNotFound, CorruptState) as exc:
            log.warning("skipping corrupt checkpoint, falling back to an older one",
                        extra={"model": record.name, "checkpoint": meta.id, "error": str(exc)})
            skipped.append(meta.id)
            continue
        restored.skipped = skipped
        return restored
    return None


def replay_events(net: Network, seen: list[str], events: list) -> int:
    """Learn consecutive log events as the learner did; returns the samples learned."""
    pixels = events[0].pixels if len(events) == 1 else np.concatenate([e.pixels for e in events])
    labels = np.concatenate([np.asarray(e.labels, np.int64) for e in events])
    net.learn_many(pixels, labels)
    for event in events:
        seen.extend(i for i in event.ids if i is not None)
    return len(labels)


class Durability:
    """Recovery and checkpoint policy for one :class:`~service.manager.ModelManager`."""

    def __init__(self, every_samples: int = DEFAULT_EVERY_SAMPLES, every_seconds: float = DEFAULT_EVERY_SECONDS,
                 store_retry_seconds: float = 1.0, checkpoint_on_shutdown: bool = True):
        if every_samples < 1 or every_seconds <= 0:
            raise ValueError("checkpoint interval must be at least 1 sample and more than 0 seconds")
        self.every_samples = every_samples
        self.every_seconds = every_seconds
        self.store_retry_seconds = store_retry_seconds
        self.checkpoint_on_shutdown = checkpoint_on_shutdown
        self._progress: dict[str, _ModelProgress] = {}
        self._scheduler: asyncio.Task | None = None
        self.last_recovery: dict[str, dict] = {}   # per model: checkpoint used, skipped, replayed, seconds

    def _progress_of(self, name: str) -> _ModelProgress:
        return self._progress.setdefault(name, _ModelProgress())

    # ----------------------------------------------------------------- recovery
    async def recover(self, manager: "ModelManager", record: ModelRecord) -> None:
        """The manager's recover hook: retried while the store is unreachable, refused if incompatible."""
        while True:
            try:
                return await self._recover_once(manager, record)
            except StoreError as exc:
                log.warning("store unreachable during recovery, retrying",
                            extra={"model": record.name, "error": str(exc), "retry_in": self.store_retry_seconds})
                await asyncio.sleep(self.store_retry_seconds)

    async def _recover_once(self, manager: "ModelManager", record: ModelRecord) -> None:
        started = time.perf_counter()
        store = manager.store
        config = record.network_config()
        restored = await load_newest_valid(store, record, config.digest())
        if restored is None:
            net = await asyncio.to_thread(Network, config, record.seed, record.preset)
            restored = Restored(net, [], None, None, [])
        trimmed = await store.trimmed_through(record.name)
        if trimmed is not None and (restored.last_log_id is None
                                    or log_id_key(restored.last_log_id) < log_id_key(trimmed)):
            raise RecoveryError(f"model {record.name!r}: the log was trimmed through {trimmed}, but the newest "
                                f"usable checkpoint covers only {restored.last_log_id or 'nothing'}; "
                                "exact recovery is impossible")
        net, seen, last_log_id = restored.net, restored.seen_ids, restored.last_log_id
        replayed, pending, pending_samples = 0, [], 0
        async for log_id, blob in store.read_log(record.name, last_log_id):
            try:
                event = decode_event(blob)
            except EventError as exc:
                raise RecoveryError(f"model {record.name!r}: log entry {log_id} is unreadable: {exc}") from exc
            pending.append(event)
            pending_samples += len(event)
            last_log_id = log_id
            if pending_samples >= REPLAY_CHUNK_SAMPLES:
                replayed += await asyncio.to_thread(replay_events, net, seen, pending)
                pending, pending_samples = [], 0
        if pending:
            replayed += await asyncio.to_thread(replay_events, net, seen, pending)
        manager.attach(record.name, net, seen, last_log_id)
        checkpoint = restored.checkpoint
        progress = self._progress_of(record.name)
        progress.step = checkpoint.step if checkpoint else 0
        progress.at = time.monotonic()
        summary = {"checkpoint": checkpoint.id if checkpoint else None, "skipped_checkpoints": restored.skipped,
                   "replayed_samples": replayed, "step": net.samples_seen, "last_log_id": last_log_id,
                   "seconds": round(time.perf_counter() - started, 3)}
        self.last_recovery[record.name] = summary
        log.info("model restored", extra={"model": record.name, **summary})
        manager.mark_ready(record.name)

    # ----------------------------------------------------------------- checkpoints
    async def checkpoint(self, manager: "ModelManager", name: str) -> CheckpointMeta:
        """The manager's checkpoint hook: capture, save, then trim the log the kept checkpoints cover."""
        progress = self._progress_of(name)
        async with progress.lock:
            started = time.perf_counter()
            export = await manager.export_checkpoint(name)
            meta = await manager.store.save_checkpoint(name, export.blob, step=export.step,
                                                       last_log_id=export.last_log_id,
                                                       config_digest=export.config_digest)
            progress.step, progress.at = export.step, time.monotonic()
            kept = await manager.store.list_checkpoints(name)
            oldest = kept[-1].last_log_id if kept else None
            trimmed = await manager.store.trim_log(name, oldest) if oldest is not None else 0
            log.info("checkpoint saved", extra={"model": name, "checkpoint": meta.id, "step": meta.step,
                                                "bytes": meta.size, "log_entries_trimmed": trimmed,
                                                "seconds": round(time.perf_counter() - started, 3)})
            return meta

    def _due(self, name: str, step: int, now: float) -> bool:
        progress = self._progress_of(name)
        if step == progress.step or now < progress.retry_at or progress.lock.locked():
            return False
        return step - progress.step >= self.every_samples or now - progress.at >= self.every_seconds

    async def run_due_checkpoints(self, manager: "ModelManager") -> list[str]:
        """One scheduler pass: checkpoint every ready model that is due; returns their names."""
        from service.manager import ModelStatus

        done = []
        now = time.monotonic()
        for gone in set(self._progress) - set(manager.models):   # deleted models (a new one may reuse the name)
            if not self._progress[gone].lock.locked():
                del self._progress[gone]
        for name, model in list(manager.models.items()):
            if model.status is not ModelStatus.READY or model.learner is None:
                continue
            if not self._due(name, model.learner.snapshot.samples_seen, now):
                continue
            try:
                await manager.checkpoint(name)
                done.append(name)
            except Exception as exc:   # the store may be down: keep serving, try again shortly
                self._progress_of(name).retry_at = time.monotonic() + max(self.store_retry_seconds, 1.0)
                log.warning("scheduled checkpoint failed", extra={"model": name, "error": str(exc)})
        return done

    async def recover_then_schedule(self, manager: "ModelManager") -> None:
        """Startup: recover every model (waiting for the store if it is unreachable), then start
        the checkpoint scheduler. Run as a background task so /healthz answers meanwhile."""
        while True:
            try:
                await manager.start()
                break
            except StoreError as exc:    # the registry could not be read: nothing is registered yet
                log.warning("store unreachable at startup, retrying",
                            extra={"error": str(exc), "retry_in": self.store_retry_seconds})
                await asyncio.sleep(self.store_retry_seconds)
        manager.recovery_error = None
        self.start(manager)

    def start(self, manager: "ModelManager") -> None:
        """Start the background scheduler (after recovery)."""
        tick = min(1.0, self.every_seconds / 4)

        async def loop() -> None:
            while True:
                await asyncio.sleep(tick)
                await self.run_due_checkpoints(manager)

        self._scheduler = asyncio.create_task(loop(), name="hebb-checkpoints")

    async def close(self, manager: "ModelManager") -> None:
        """Stop the scheduler, then checkpoint every model that changed since its last checkpoint.
        Run before the learners stop: the capture is queued behind every write already accepted."""
        from service.manager import ModelStatus

        if self._scheduler is not None:
            self._scheduler.cancel()
            try:
                await self._scheduler
            except (asyncio.CancelledError, Exception):
                pass
            self._scheduler = None
        if not self.checkpoint_on_shutdown:
            return
        for name, model in list(manager.models.items()):
            if model.learner is None or not model.learner.alive or model.status is ModelStatus.RECOVERING:
                continue
            step = await manager.on_learner(name, lambda net: net.samples_seen)
            if step == self._progress_of(name).step:
                continue
            try:
                await manager.checkpoint(name)
            except Exception as exc:   # the log still holds everything: recovery replays it
                log.warning("shutdown checkpoint failed", extra={"model": name, "error": str(exc)})
