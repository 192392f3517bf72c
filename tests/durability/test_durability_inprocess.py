"""Durability policy in-process (ModelManager + Durability over the file and Redis stores): the
checkpoint schedule, log trimming, refusal of incompatible checkpoints, gap detection, and catching
up after an append whose reply was lost."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest

from model.config import make_config
from service.durability import Durability, IncompatibleCheckpoint, RecoveryError
from service.events import CHECKPOINT_MAGIC, CHECKPOINT_VERSION, CheckpointPayload, encode_checkpoint
from service.manager import ModelManager
from service.stores import ModelRecord, StoreError, log_id_key, make_store

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def running(url: str, store=None, **durability):
    """A service layer without HTTP: store + recovered manager + durability; shut down gracefully."""
    store = store or make_store(url)
    await store.open()
    d = Durability(**durability)
    manager = ModelManager(store, recover=d.recover, checkpointer=d.checkpoint)
    try:
        await manager.start()
        yield manager, d
        await d.close(manager)
        await manager.close()
    finally:
        await store.close()


async def learn(manager, stream, start, stop, name="m"):
    return await manager.learn(name, stream.X[start:stop], stream.y[start:stop].tolist(), stream.ids[start:stop])


async def digest(manager, name="m"):
    return (await manager.info(name))["state_digest"]


async def test_scheduler_checkpoints_every_n_samples_or_t_seconds(durable_url, stream):
    async with running(durable_url, every_samples=100, every_seconds=3600) as (manager, d):
        await manager.create_model("m", "mnist-shallow")
        assert await d.run_due_checkpoints(manager) == []          # nothing learned yet
        await learn(manager, stream, 0, 80)
        assert await d.run_due_checkpoints(manager) == []          # 80 < 100 and the hour is not over
        await learn(manager, stream, 80, 120)
        assert await d.run_due_checkpoints(manager) == ["m"]
        assert [c.step for c in await manager.store.list_checkpoints("m")] == [120]
        await learn(manager, stream, 120, 130)
        assert await d.run_due_checkpoints(manager) == []
        d._progress_of("m").at = time.monotonic() - 3601          # the time interval has passed
        assert await d.run_due_checkpoints(manager) == ["m"]
        assert [c.step for c in await manager.store.list_checkpoints("m")] == [130, 120]
        await learn(manager, stream, 130, 140)
    # graceful shutdown checkpoints what changed since
    async with running(durable_url) as (manager, d):
        assert [c.step for c in await manager.store.list_checkpoints("m")] == [140, 130, 120]
        assert d.last_recovery["m"]["replayed_samples"] == 0
        await d.close(manager)                                    # unchanged: no new checkpoint
        assert len(await manager.store.list_checkpoints("m")) == 3


async def test_log_is_trimmed_only_through_the_oldest_kept_checkpoint(durable_url, stream, reference_digest):
    async with running(durable_url, checkpoint_on_shutdown=False) as (manager, d):
        await manager.create_model("m", "mnist-shallow")
        for i in range(5):
            await learn(manager, stream, i * 50, i * 50 + 50)
            await manager.checkpoint("m")
        await learn(manager, stream, 250, 275)
        kept = await manager.store.list_checkpoints("m")
        assert [c.step for c in kept] == [250, 200, 150]
        remaining = [log_id async for log_id, _ in manager.store.read_log("m")]
        assert remaining and log_id_key(remaining[0]) > log_id_key(kept[-1].last_log_id)
        assert len(remaining) == 3      # the batches after the oldest kept checkpoint (step 150)
    # the two newest checkpoints are damaged: the oldest one plus the untrimmed log still recover exactly
    async with running(durable_url, checkpoint_on_shutdown=False) as (manager, d):
        for meta in kept[:2]:
            await corrupt(manager.store, "m", meta.id)
    async with running(durable_url) as (manager, d):
        assert d.last_recovery["m"]["checkpoint"] == kept[2].id
        assert d.last_recovery["m"]["skipped_checkpoints"] == [kept[0].id, kept[1].id]
        assert d.last_recovery["m"]["replayed_samples"] == 125
        assert await digest(manager) == reference_digest(275)


def _flip_last_byte(blob: bytes) -> bytes:
    # flipped, not overwritten: a byte that already held the written value would stay intact
    return blob[:-1] + bytes([blob[-1] ^ 0xFF])


async def corrupt(store, name, checkpoint_id):
    if hasattr(store, "_checkpoint_dir"):
        path = store._checkpoint_dir(name) / f"{checkpoint_id}.ckpt"
        path.write_bytes(_flip_last_byte(path.read_bytes()))
    else:
        key = store._blob_key(name, checkpoint_id)
        await store.redis.set(key, _flip_last_byte(await store.redis.get(key)))


async def test_checkpoint_of_another_config_is_refused(durable_url, stream):
    async with running(durable_url) as (manager, d):
        await manager.create_model("m", "mnist-shallow")
        await learn(manager, stream, 0, 100)
    # the registry record now says another config (e.g. edited by hand or a changed preset)
    store = make_store(durable_url)
    await store.open()
    record = (await store.list_models())[0]
    await store.save_model(ModelRecord(record.name, record.preset, {"readout": {"solve_every": 123}}, record.seed,
                                       record.created_at))
    d = Durability()
    manager = ModelManager(store, recover=d.recover, checkpointer=d.checkpoint)
    with pytest.raises(IncompatibleCheckpoint, match="refusing"):
        await manager.start()
    assert "IncompatibleCheckpoint" in manager.recovery_error and not manager.ready
    await manager.close()
    await store.close()


async def test_a_record_stored_before_records_kept_their_network_still_recovers(durable_url, stream, monkeypatch):
    """Records that name only a preset were written when "mnist" had 384/768 units (today's
    "mnist-wide"): a model created then recovers its checkpoint and log into that network."""
    async with running(durable_url, checkpoint_on_shutdown=False) as (manager, d):
        await manager.create_model("m", "mnist-wide")        # what "mnist" created before 2026-11-27
        await learn(manager, stream, 0, 40)
        await manager.checkpoint("m")
        await learn(manager, stream, 40, 60)                  # after the checkpoint: replayed from the log
        expected = await digest(manager)
    store = make_store(durable_url)
    await store.open()
    record = (await store.list_models())[0]
    # the record as the earlier service stored it: preset "mnist", no network
    with monkeypatch.context() as patch:
        patch.setattr(ModelRecord, "to_dict", lambda self: {"name": self.name, "preset": "mnist", "config": {},
                                                            "seed": self.seed, "created_at": self.created_at})
        await store.save_model(record)
    await store.close()
    async with running(durable_url, checkpoint_on_shutdown=False) as (manager, d):
        info = await manager.info("m")
        assert info["preset"] == "mnist" and info["state_digest"] == expected
        assert info["config_digest"] == make_config("mnist-wide").digest()   # what it really runs
        assert d.last_recovery["m"]["replayed_samples"] == 20
        assert manager.models["m"].learner.net.layers[1].config.channels == 384


async def test_checkpoint_of_another_format_version_is_refused_not_skipped(durable_url, stream):
    async with running(durable_url) as (manager, d):
        await manager.create_model("m", "mnist-shallow")
        await learn(manager, stream, 0, 100)
        export = await manager.export_checkpoint("m")
    blob = encode_checkpoint(CheckpointPayload(b"", [], export.last_log_id))
    assert blob[:5] == CHECKPOINT_MAGIC + bytes([CHECKPOINT_VERSION])
    future = blob[:4] + bytes([CHECKPOINT_VERSION + 1]) + blob[5:-4]
    import struct
    import zlib
    future += struct.pack("<I", zlib.crc32(future))      # intact, just newer
    store = make_store(durable_url)
    await store.open()
    await store.save_checkpoint("m", future, step=100, last_log_id=export.last_log_id,
                                config_digest=export.config_digest)
    d = Durability()
    manager = ModelManager(store, recover=d.recover, checkpointer=d.checkpoint)
    with pytest.raises(IncompatibleCheckpoint, match="version"):
        await manager.start()
    await manager.close()
    await store.close()


async def test_a_log_gap_is_reported_not_papered_over(durable_url, stream):
    async with running(durable_url) as (manager, d):
        await manager.create_model("m", "mnist-shallow")
        await learn(manager, stream, 0, 100)
        meta = await manager.checkpoint("m")
        await learn(manager, stream, 100, 200)
        await manager.checkpoint("m")
        await manager.store.trim_log("m", (await manager.store.latest_checkpoint("m")).last_log_id)
        for m in await manager.store.list_checkpoints("m"):
            await corrupt(manager.store, "m", m.id)
    assert meta.step == 100
    d = Durability()
    store = make_store(durable_url)
    await store.open()
    manager = ModelManager(store, recover=d.recover, checkpointer=d.checkpoint)
    with pytest.raises(RecoveryError, match="trimmed"):
        await manager.start()
    await manager.close()
    await store.close()


class LosesOneAppendReply:
    """Wraps a store: the first append after ``arm()`` lands in the log, but its caller gets an
    error (as when Redis dies between writing the entry and replying)."""

    def __init__(self, store):
        self._store = store
        self.armed = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def arm(self):
        self.armed = True

    async def append(self, name, event):
        log_id = await self._store.append(name, event)
        if self.armed:
            self.armed = False
            raise StoreError("connection lost before the reply")
        return log_id


async def test_an_append_that_landed_without_reply_is_learned_once(durable_url, stream, reference_digest):
    store = LosesOneAppendReply(make_store(durable_url))
    async with running(durable_url, store=store) as (manager, d):
        await manager.create_model("m", "mnist-shallow")
        await learn(manager, stream, 0, 50)
        store.arm()
        with pytest.raises(StoreError):
            await learn(manager, stream, 50, 100)        # logged, but the client saw a failure
        retry = await learn(manager, stream, 50, 100)    # the client retries the same ids
        assert retry.accepted == 0 and len(retry.duplicates) == 50
        await learn(manager, stream, 100, 150)
        assert await digest(manager) == reference_digest(150)
    async with running(durable_url) as (manager, d):   # and the log replays to the same state
        assert await digest(manager) == reference_digest(150)
