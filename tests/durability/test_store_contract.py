"""The Store contract, run against every durable backend (file and Redis) by the ``store`` fixture."""

from __future__ import annotations

import pytest

from service.stores import CHECKPOINTS_KEPT, CheckpointNotFound, CorruptCheckpoint, ModelRecord, StoreError, log_id_key

pytestmark = pytest.mark.anyio


async def collect(store, name, after=None):
    return [entry async for entry in store.read_log(name, after)]


async def test_registry_round_trip_in_creation_order(store):
    await store.save_model(ModelRecord(name="b", preset="mnist-shallow", config={"classes": 10}, seed=3, created_at=2.0))
    await store.save_model(ModelRecord(name="a", preset="mnist", seed=1, created_at=1.0))
    await store.save_model(ModelRecord(name="b", preset="mnist-shallow", config={"classes": 10}, seed=4, created_at=2.0))
    records = await store.list_models()
    assert [r.name for r in records] == ["a", "b"]
    assert records[1].seed == 4 and records[1].config == {"classes": 10}
    # the full network config is stored with the record and comes back equal
    assert records == [ModelRecord(name="a", preset="mnist", seed=1, created_at=1.0),
                       ModelRecord(name="b", preset="mnist-shallow", config={"classes": 10}, seed=4, created_at=2.0)]
    assert await store.delete_model("a") is True
    assert await store.delete_model("a") is False
    assert [r.name for r in await store.list_models()] == ["b"]


async def test_log_ids_increase_and_read_after_is_exclusive(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    ids = [await store.append("m", f"event-{i}".encode()) for i in range(5)]
    assert sorted(ids, key=log_id_key) == ids and len(set(ids)) == 5
    assert await collect(store, "m") == [(i, f"event-{n}".encode()) for n, i in enumerate(ids)]
    assert [e for _, e in await collect(store, "m", after=ids[2])] == [b"event-3", b"event-4"]
    assert await collect(store, "m", after=ids[-1]) == []


async def test_logs_are_per_model(store):
    for name in ("x", "y"):
        await store.save_model(ModelRecord(name=name, preset="mnist"))
    await store.append("x", b"for x")
    await store.append("y", b"for y")
    assert [e for _, e in await collect(store, "x")] == [b"for x"]


async def test_trim_is_inclusive_and_later_appends_still_increase(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    ids = [await store.append("m", bytes([i])) for i in range(6)]
    assert await store.trim_log("m", ids[3]) == 4
    assert await store.trimmed_through("m") == ids[3]
    assert [e for _, e in await collect(store, "m")] == [bytes([4]), bytes([5])]
    assert await store.trim_log("m", ids[1]) == 0  # never moves backwards
    new_id = await store.append("m", b"\x06")
    assert log_id_key(new_id) > log_id_key(ids[-1])
    assert [e for _, e in await collect(store, "m", after=ids[3])] == [bytes([4]), bytes([5]), b"\x06"]


async def test_trimming_everything_then_appending(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    ids = [await store.append("m", b"old") for _ in range(3)]
    assert await store.trim_log("m", ids[-1]) == 3
    assert await collect(store, "m") == []
    new_id = await store.append("m", b"new")
    assert log_id_key(new_id) > log_id_key(ids[-1])
    assert await collect(store, "m") == [(new_id, b"new")]


async def test_append_to_unregistered_model_is_refused(store):
    with pytest.raises(StoreError):
        await store.append("ghost", b"x")


async def test_large_events_round_trip(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    big = bytes(range(256)) * 1000  # a 256-sample batch of 28x28 pixels is ~200 kB
    log_id = await store.append("m", big)
    assert await collect(store, "m") == [(log_id, big)]


async def test_checkpoints_keep_newest_three_newest_first(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    metas = [await store.save_checkpoint("m", f"blob{i}".encode() * 100, step=i * 10, last_log_id=f"{i}-0",
                                         config_digest="d") for i in range(5)]
    listed = await store.list_checkpoints("m")
    assert [m.id for m in listed] == [m.id for m in reversed(metas)][:CHECKPOINTS_KEPT]
    assert (await store.latest_checkpoint("m")).step == 40
    assert listed[0].last_log_id == "4-0" and listed[0].config_digest == "d" and listed[0].size == 500
    assert await store.load_checkpoint("m", metas[3].id) == b"blob3" * 100
    with pytest.raises(CheckpointNotFound):
        await store.load_checkpoint("m", metas[0].id)  # rotated out


async def test_checkpoint_ids_keep_increasing_after_delete(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    first = await store.save_checkpoint("m", b"a", step=1, last_log_id=None, config_digest="d")
    assert await store.delete_checkpoints("m") == 1
    assert await store.list_checkpoints("m") == []
    second = await store.save_checkpoint("m", b"b", step=2, last_log_id=None, config_digest="d")
    assert second.id != first.id


async def test_delete_model_removes_log_and_checkpoints(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    await store.append("m", b"e")
    await store.save_checkpoint("m", b"c", step=1, last_log_id=None, config_digest="d")
    assert await store.delete_model("m")
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    assert await collect(store, "m") == []
    assert await store.list_checkpoints("m") == []
    assert await store.trimmed_through("m") is None


async def test_model_names_with_odd_characters(store):
    name = "team/a b:c"
    await store.save_model(ModelRecord(name=name, preset="mnist"))
    await store.append(name, b"e")
    assert [r.name for r in await store.list_models()] == [name]
    assert [e for _, e in await collect(store, name)] == [b"e"]


async def test_ping(store):
    assert await store.ping() is True


async def test_everything_survives_reopening(durable_url):
    from service.stores import open_store

    store = await open_store(durable_url)
    await store.save_model(ModelRecord(name="m", preset="mnist-shallow", seed=7))
    ids = [await store.append("m", bytes([i]) * 10) for i in range(3)]
    await store.trim_log("m", ids[0])
    meta = await store.save_checkpoint("m", b"state", step=5, last_log_id=ids[0], config_digest="d")
    await store.close()

    store = await open_store(durable_url)
    try:
        assert [(r.name, r.seed) for r in await store.list_models()] == [("m", 7)]
        assert [i for i, _ in await collect(store, "m")] == ids[1:]
        assert await store.trimmed_through("m") == ids[0]
        assert await store.list_checkpoints("m") == [meta]
        assert await store.load_checkpoint("m", meta.id) == b"state"
        assert log_id_key(await store.append("m", b"next")) > log_id_key(ids[-1])
    finally:
        await store.close()


async def corrupt_blob(store, name: str, checkpoint_id: str) -> None:
    """Flip one byte of a stored checkpoint blob behind the store's back (a bit rot / bad disk)."""
    from service.stores.file_store import FileStore

    if isinstance(store, FileStore):
        path = store._checkpoint_dir(name) / f"{checkpoint_id}.ckpt"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        key = store._blob_key(name, checkpoint_id)
        data = bytearray(await store.redis.get(key))
        data[len(data) // 2] ^= 0xFF
        await store.redis.set(key, bytes(data))


async def test_corrupt_checkpoint_is_detected_and_others_still_load(store):
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    older = await store.save_checkpoint("m", b"older" * 50, step=1, last_log_id=None, config_digest="d")
    newer = await store.save_checkpoint("m", b"newer" * 50, step=2, last_log_id=None, config_digest="d")
    await corrupt_blob(store, "m", newer.id)
    with pytest.raises(CorruptCheckpoint):
        await store.load_checkpoint("m", newer.id)
    assert await store.load_checkpoint("m", older.id) == b"older" * 50
