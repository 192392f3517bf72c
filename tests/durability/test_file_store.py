"""File-store specifics: torn log tails, segment rotation and trimming, crash debris, fsync'd layout."""

from __future__ import annotations

import pytest

from service.stores import ModelRecord, StoreError, open_store
from service.stores.file_store import FileStore, path_from_url

pytestmark = pytest.mark.anyio


async def entries(store, name, after=None):
    return [e async for e in store.read_log(name, after)]


def segments(store: FileStore, name: str):
    return sorted((store._model_dir(name) / "log").glob("*.seg"))


async def test_torn_tail_is_dropped_and_appends_continue(tmp_path):
    url = f"file://{tmp_path}"
    store = await open_store(url)
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    ids = [await store.append("m", b"x" * 100) for _ in range(3)]
    await store.close()
    segment = segments(store, "m")[-1]
    intact = segment.stat().st_size
    with open(segment, "ab") as f:  # a crash mid-write: a header and half a payload
        f.write(b"\x64\x00\x00\x00" + b"\x00" * 12 + b"y" * 40)

    store = await open_store(url)
    try:
        assert [i for i, _ in await entries(store, "m")] == ids
        assert segment.stat().st_size == intact
        new_id = await store.append("m", b"z")
        assert [e for _, e in await entries(store, "m", ids[-1])] == [b"z"]
        assert new_id == f"{int(ids[-1].split('-')[0]) + 1}-0"
    finally:
        await store.close()


async def test_a_flipped_byte_ends_the_readable_log_at_that_record(tmp_path):
    url = f"file://{tmp_path}"
    store = await open_store(url)
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    ids = [await store.append("m", bytes([i]) * 50) for i in range(3)]
    await store.close()
    segment = segments(store, "m")[-1]
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF  # inside the last record's payload: its crc no longer matches
    segment.write_bytes(bytes(data))
    store = await open_store(url)
    try:
        assert [i for i, _ in await entries(store, "m")] == ids[:2]
    finally:
        await store.close()


async def test_segments_rotate_and_trim_deletes_covered_ones(tmp_path):
    store = FileStore(f"file://{tmp_path}", segment_bytes=300)
    await store.open()
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    ids = [await store.append("m", bytes([i]) * 100) for i in range(10)]
    assert len(segments(store, "m")) >= 4
    assert [e for _, e in await entries(store, "m")] == [bytes([i]) * 100 for i in range(10)]
    before = len(segments(store, "m"))
    assert await store.trim_log("m", ids[6]) == 7
    assert len(segments(store, "m")) < before
    assert [i for i, _ in await entries(store, "m")] == ids[7:]
    await store.trim_log("m", ids[9])
    assert len(segments(store, "m")) == 1  # the fresh, empty active segment
    await store.close()
    store = FileStore(f"file://{tmp_path}", segment_bytes=300)
    await store.open()
    assert await entries(store, "m") == []
    assert (await store.append("m", b"n")) == "11-0"
    await store.close()


async def test_orphan_blob_of_a_crash_mid_save_is_ignored_then_cleaned(tmp_path):
    store = await open_store(f"file://{tmp_path}")
    await store.save_model(ModelRecord(name="m", preset="mnist"))
    first = await store.save_checkpoint("m", b"one", step=1, last_log_id=None, config_digest="d")
    orphan = store._checkpoint_dir("m") / "0000000002.ckpt"
    orphan.write_bytes(b"half written")  # blob renamed in place, crash before INDEX moved
    (store._checkpoint_dir("m") / ".0000000003.ckpt.abc.tmp").write_bytes(b"half")  # crash mid temp write
    assert [m.id for m in await store.list_checkpoints("m")] == [first.id]
    second = await store.save_checkpoint("m", b"two", step=2, last_log_id=None, config_digest="d")
    assert await store.load_checkpoint("m", second.id) == b"two"
    assert not any(p.name.startswith(".") for p in store._checkpoint_dir("m").iterdir())  # no temp files left
    await store.close()


def test_url_forms():
    assert path_from_url("file://./hebb-data") == "./hebb-data"
    assert path_from_url("file:///var/lib/hebb") == "/var/lib/hebb"
    with pytest.raises(ValueError):
        path_from_url("file://")


async def test_a_directory_has_one_owner_at_a_time(tmp_path):
    url = f"file://{tmp_path}"
    first = await open_store(url)
    with pytest.raises(StoreError, match="in use"):
        await open_store(url)
    await first.close()
    second = await open_store(url)      # released on close (and by the OS when the owner dies)
    await second.close()
