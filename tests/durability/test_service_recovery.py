"""Acceptance: the real service (``hebb serve`` subprocess) on the file store and on a real AOF
``redis-server``: kill -9 mid-stream, a corrupt latest checkpoint, the registry across restarts."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from service.stores import make_store

BATCH = 100
# small intervals so checkpoints (and log trims) happen inside the stream
SERVICE_ENV = {"HEBB_CHECKPOINT_EVERY_SAMPLES": 500, "HEBB_CHECKPOINT_EVERY_SECONDS": 60}


class RetryingClient(threading.Thread):
    """Posts the stream in batches with stable sample ids; a batch is re-sent (same ids) until it is
    acknowledged — through connection errors, 503s while the service is down or recovering."""

    def __init__(self, url: str, model: str, stream, helpers, stop_at: int | None = None):
        super().__init__(daemon=True)
        self.url, self.model, self.stream, self.helpers = url, model, stream, helpers
        self.stop_at = stop_at or len(stream.X)
        self.acknowledged = 0      # samples of acknowledged batches
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=30.0) as client:
                for start in range(0, self.stop_at, BATCH):
                    body = self.helpers.batch_body(self.stream, start, min(start + BATCH, self.stop_at))
                    while True:
                        try:
                            r = client.post(f"/v1/models/{self.model}/samples", json=body)
                        except httpx.HTTPError:
                            r = None
                        if r is not None and r.status_code == 200:
                            break
                        if r is not None and r.status_code != 503:
                            raise AssertionError(f"unexpected {r.status_code}: {r.text}")
                        self.retries += 1
                        time.sleep(0.05)
                    self.acknowledged = min(start + BATCH, self.stop_at)
        except BaseException as exc:
            self.error = exc


def model_info(url: str, name: str) -> dict:
    r = httpx.get(f"{url}/v1/models/{name}", timeout=30.0)
    assert r.status_code == 200, r.text
    return r.json()


def create_model(url: str, name: str, **extra) -> None:
    r = httpx.post(f"{url}/v1/models", json={"name": name, "preset": "mnist-shallow", "seed": 0, **extra}, timeout=60)
    assert r.status_code == 201, r.text


def test_kill9_mid_stream_recovers_to_the_uninterrupted_digest(service_store, service_factory, stream, helpers,
                                                               reference_digest):
    svc = service_factory(service_store.url, **SERVICE_ENV)
    svc.wait_ready()
    create_model(svc.url, "digits")
    client = RetryingClient(svc.url, "digits", stream, helpers)
    client.start()
    while client.acknowledged < 300 and client.is_alive():
        time.sleep(0.005)
    # one on-demand checkpoint for sure (the scheduler's may or may not fire before the first kill),
    # so recovery goes through checkpoint + replay, not only the log
    assert httpx.post(f"{svc.url}/v1/models/digits/checkpoints", timeout=60).status_code == 201
    for kill_after in (700, 1400):
        while client.acknowledged < kill_after and client.is_alive():
            time.sleep(0.005)
        svc.kill9()                       # mid-stream: the client has a request in flight
        svc.start()
        recovered = svc.wait_ready()
        assert recovered["models"] == {"digits": "ready"}
    client.join(timeout=180)
    assert client.error is None, client.error
    assert not client.is_alive()
    assert client.retries > 0             # the kills really interrupted the stream

    info = model_info(svc.url, "digits")
    assert info["samples_seen"] == len(stream.X)          # each sample learned exactly once
    assert info["state_digest"] == reference_digest(len(stream.X))
    assert info["checkpoint"] is not None                 # recovery went through checkpoints, not only the log
    # retrying an already learned batch after all that learns nothing
    again = httpx.post(f"{svc.url}/v1/models/digits/samples", json=helpers.batch_body(stream, 0, BATCH), timeout=30)
    assert again.json()["accepted"] == 0 and len(again.json()["duplicates"]) == BATCH


async def corrupt_latest_checkpoint(url: str) -> str:
    store = make_store(url)
    await store.open()
    try:
        latest = await store.latest_checkpoint("digits")
        if hasattr(store, "_checkpoint_dir"):
            path = store._checkpoint_dir("digits") / f"{latest.id}.ckpt"
            data = bytearray(path.read_bytes())
            data[len(data) // 3] ^= 0x5A
            path.write_bytes(bytes(data))
        else:
            key = store._blob_key("digits", latest.id)
            data = bytearray(await store.redis.get(key))
            data[len(data) // 3] ^= 0x5A
            await store.redis.set(key, bytes(data))
        return latest.id
    finally:
        await store.close()


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(service_store, service_factory, stream, helpers,
                                                                  reference_digest):
    svc = service_factory(service_store.url, HEBB_CHECKPOINT_EVERY_SAMPLES=100_000)
    svc.wait_ready()
    create_model(svc.url, "digits")
    for start, stop in ((0, 300), (300, 600)):
        r = httpx.post(f"{svc.url}/v1/models/digits/samples", json=helpers.batch_body(stream, start, stop), timeout=60)
        assert r.status_code == 200, r.text
        r = httpx.post(f"{svc.url}/v1/models/digits/checkpoints", timeout=60)
        assert r.status_code == 201 and r.json()["step"] == stop, r.text
    r = httpx.post(f"{svc.url}/v1/models/digits/samples", json=helpers.batch_body(stream, 600, 800), timeout=60)
    assert r.status_code == 200
    listed = httpx.get(f"{svc.url}/v1/models/digits/checkpoints", timeout=30).json()
    assert [c["step"] for c in listed] == [600, 300]
    assert httpx.get(f"{svc.url}/v1/models/nope/checkpoints", timeout=30).status_code == 404
    assert httpx.post(f"{svc.url}/v1/models/nope/checkpoints", timeout=30).status_code == 404
    svc.kill9()

    bad = asyncio.run(corrupt_latest_checkpoint(service_store.url))
    svc.start()
    svc.wait_ready()
    info = model_info(svc.url, "digits")
    assert info["samples_seen"] == 800
    assert info["state_digest"] == reference_digest(800)
    log = svc.log()
    assert "skipping corrupt checkpoint" in log and bad in log


def test_registry_survives_restart(service_store, service_factory):
    svc = service_factory(service_store.url)
    svc.wait_ready()
    create_model(svc.url, "alpha", seed=3)
    create_model(svc.url, "beta", config={"readout": {"solve_every": 500}})
    create_model(svc.url, "gone")
    assert httpx.delete(f"{svc.url}/v1/models/gone", timeout=30).status_code == 204
    before = {m["name"]: m for m in httpx.get(f"{svc.url}/v1/models", timeout=30).json()["models"]}
    svc.stop()
    svc.start()
    svc.wait_ready()
    after = {m["name"]: m for m in httpx.get(f"{svc.url}/v1/models", timeout=30).json()["models"]}
    assert sorted(after) == ["alpha", "beta"]
    for name in after:
        for key in ("preset", "seed", "config", "created_at", "state_digest", "samples_seen"):
            assert after[name][key] == before[name][key], (name, key)
    assert after["alpha"]["seed"] == 3 and after["beta"]["config"] == {"readout": {"solve_every": 500}}


def test_default_store_is_the_embedded_file_store(service_factory, tmp_path):
    svc = service_factory(None)           # plain `hebb serve`, run in tmp_path
    svc.wait_ready()
    create_model(svc.url, "digits")
    assert (tmp_path / "hebb-data" / "models" / "digits" / "record.json").exists()
    svc.stop()
    svc.start()
    svc.wait_ready()
    assert [m["name"] for m in httpx.get(f"{svc.url}/v1/models", timeout=30).json()["models"]] == ["digits"]
