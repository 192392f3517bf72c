"""Readiness while models recover, and graceful shutdown draining the learner queues."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import httpx
import uvicorn

from model import Network
from service.app import create_app
from service.events import EventKind, LearnEvent, encode_event
from service.redis_process import free_port
from service.settings import Settings
from service.stores.base import ModelRecord
from service.stores.memory import MemoryStore


class GatedStore(MemoryStore):
    """A memory store whose log reads wait for a gate: recovery stays in progress until it opens."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()

    async def read_log(self, name, after=None):
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        async for item in super().read_log(name, after):
            yield item


def _serve(app, port):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return server, thread
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def test_readiness_follows_recovery(digits):
    X, y = digits
    store = GatedStore()
    asyncio.run(store.save_model(ModelRecord("restored", "mnist-shallow", {}, 3)))
    event = LearnEvent(EventKind.LEARN, [f"r{i}" for i in range(30)], X[:30], y[:30].tolist())
    asyncio.run(store.append("restored", encode_event(event)))
    port = free_port()
    server, thread = _serve(create_app(Settings(access_log=False), store=store), port)
    url = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(url + "/healthz").status_code == 200
        r = httpx.get(url + "/readyz")
        assert r.status_code == 503 and r.json()["models"] == {"restored": "recovering"}
        assert httpx.get(url + "/v2/health/ready").status_code == 503
        r = httpx.post(url + "/v1/models/restored/predict", json={"inputs": [{"x": X[0].tolist()}]})
        assert r.status_code == 503 and r.json()["code"] == "not_ready"
        store.gate.set()
        for _ in range(600):
            if httpx.get(url + "/readyz").status_code == 200:
                break
            time.sleep(0.05)
        assert httpx.get(url + "/readyz").json()["models"] == {"restored": "ready"}
        local = Network("mnist-shallow", seed=3)
        local.learn_many(X[:30], y[:30])
        info = httpx.get(url + "/v1/models/restored").json()
        assert info["state_digest"] == local.state_digest() and info["step"] == 30
        # the replayed ids are remembered: a retry is not learned twice
        retry = httpx.post(url + "/v1/models/restored/samples",
                           json={"samples": [{"id": "r0", "x": X[0].tolist(), "label": int(y[0])}]}).json()
        assert retry["accepted"] == 0 and retry["duplicates"] == ["r0"]
    finally:
        server.should_exit = True
        thread.join(30)


def test_graceful_shutdown_drains_the_queue(tools, digits, tmp_path):
    """Stopping while writes are queued: each is learned and answered before the process ends."""
    X, y = digits
    store = MemoryStore()
    port = free_port()
    app = create_app(Settings(access_log=False), store=store)
    server, thread = _serve(app, port)
    url = f"http://127.0.0.1:{port}"
    httpx.post(url + "/v1/models", json={"name": "drain", "preset": "mnist-shallow"}).raise_for_status()
    results = []

    def post(i):
        body = tools.samples_body(X[i * 250:(i + 1) * 250], y[i * 250:(i + 1) * 250])
        r = httpx.post(url + "/v1/models/drain/samples", json=body, timeout=60)
        results.append((r.status_code, r.json().get("step")))

    posters = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for p in posters:
        p.start()
    # wait until the writes are queued, then stop the server while they are being learned
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(asyncio.run(_log_entries(store))) < 4:
        time.sleep(0.01)
    server.should_exit = True
    for p in posters:
        p.join(60)
    thread.join(60)
    assert sorted(results) == [(200, 250), (200, 500), (200, 750), (200, 1000)]
    learner = app.state.manager.models["drain"].learner
    assert not learner.alive and learner.net.samples_seen == 1000 and learner.queued_samples == 0


async def _log_entries(store):
    from service.events import decode_event
    return [decode_event(blob) async for _, blob in store.read_log("drain")]


def test_sigterm_finishes_queued_writes_then_exits_cleanly(tmp_path, digits, tools):
    """The real ``hebb serve`` process: SIGTERM while a batch is being learned still answers it."""
    X, y = digits
    server = tools.Server(tmp_path, {"HEBB_STORE": f"file://{tmp_path / 'data'}"})
    try:
        httpx.post(server.url + "/v1/models", json={"name": "term", "preset": "mnist-shallow"}).raise_for_status()
        body = tools.samples_body(X[:1500], y[:1500])
        answer = {}

        def post():
            answer["r"] = httpx.post(server.url + "/v1/models/term/samples", json=body, timeout=120)

        poster = threading.Thread(target=post)
        poster.start()
        queued = 'hebb_learn_queue_samples{model="term"} 1500.0'
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and queued not in httpx.get(server.url + "/metrics").text:
            time.sleep(0.01)
        assert queued in httpx.get(server.url + "/metrics").text
    finally:
        code = server.stop()
    poster.join(60)
    # uvicorn finishes the graceful shutdown, then re-raises SIGTERM: the conventional exit status
    assert code in (0, -signal.SIGTERM), server.log()
    assert answer["r"].status_code == 200 and answer["r"].json()["step"] == 1500
    assert '"service stopped"' in server.log()
