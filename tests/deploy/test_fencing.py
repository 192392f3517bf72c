"""Two learners never write the same model: leases, and fencing of every write by the lease token.

In-process against a real redis-server (the Lua scripts and WATCH run in Redis), then end to end:
a learner paused (SIGSTOP) past its lease ttl is deposed, and when it wakes up its writes are
refused and it steps down, so the model's history never forks."""

from __future__ import annotations

import asyncio
import base64
import signal
import time

import httpx
import pytest

from model import Network
from service.lease import Leases
from service.replica import ServingChannel
from service.stores.base import Fenced, ModelRecord
from service.stores.redis_store import RedisStore


def test_a_deposed_learner_cannot_append_checkpoint_or_publish(redis_server):
    async def scenario() -> None:
        url = f"{redis_server.url}?prefix=fence"
        old, new = RedisStore(url), RedisStore(url)
        await old.open()
        await new.open()
        try:
            await old.save_model(ModelRecord(name="m", preset="mnist-shallow"))
            old_leases, new_leases = Leases(old, ttl_seconds=0.3), Leases(new, ttl_seconds=5.0)
            old_token = await old_leases.acquire("m")
            assert old_token is not None
            assert await new_leases.acquire("m") is None          # held: SET NX fails
            old.fences["m"] = old_token
            first = await old.append("m", b"event-1")
            await old.save_checkpoint("m", b"state-1", step=1, last_log_id=first, config_digest="c")
            await ServingChannel(old).publish("m", old_token, b"serving-1", 1)
            assert await old_leases.renew("m", old_token)

            await asyncio.sleep(0.45)                              # the old learner stalls past its ttl
            new_token = await new_leases.acquire("m")
            assert new_token is not None and new_token != old_token
            new.fences["m"] = new_token

            with pytest.raises(Fenced):
                await old.append("m", b"event-stale")
            with pytest.raises(Fenced):
                await old.save_checkpoint("m", b"state-stale", step=2, last_log_id=first, config_digest="c")
            with pytest.raises(Fenced):
                await ServingChannel(old).publish("m", old_token, b"serving-stale", 2)
            assert not await old_leases.renew("m", old_token)      # compare-and-set: cannot revive it
            assert not await old_leases.release("m", old_token)    # nor drop the new holder's lease
            assert await new_leases.holder("m") == new_token

            await new.append("m", b"event-2")
            assert [event async for _, event in new.read_log("m")] == [b"event-1", b"event-2"]
            assert [meta.step for meta in await new.list_checkpoints("m")] == [1]
            channel = ServingChannel(new)
            assert await channel.step("m") == 1 and await channel.fetch("m") == b"serving-1"
            assert await new_leases.release("m", new_token)
            assert await new_leases.holder("m") is None
        finally:
            await old.close()
            await new.close()

    asyncio.run(scenario())


def _batch(X, y, start, stop):
    return {"samples": [{"id": f"s{i}", "label": int(y[i]), "x_b64": base64.b64encode(X[i].tobytes()).decode()}
                        for i in range(start, stop)]}


def _leading(proc) -> list[str]:
    """The models the learner leads and has caught up (/readyz 200)."""
    r = httpx.get(proc.url + "/readyz", timeout=10)
    return r.json()["leading"] if r.status_code == 200 else []


def test_a_paused_learner_is_deposed_and_its_writes_are_refused(redis_server, roles, mnist):
    X = mnist["train_images"][:450].reshape(-1, 784)
    y = mnist["train_labels"][:450]
    learner_a = roles.start("learner", redis_server.url).wait_live()
    learner_b = roles.start("learner", redis_server.url).wait_live()
    r = httpx.post(learner_a.url + "/v1/models", json={"name": "m", "preset": "mnist-shallow"}, timeout=60)
    assert r.status_code == 201, r.text
    assert httpx.post(learner_a.url + "/v1/models/m/samples", json=_batch(X, y, 0, 200), timeout=60).status_code == 200

    learner_a.proc.send_signal(signal.SIGSTOP)                   # a long GC pause, a frozen VM...
    try:
        deadline = time.monotonic() + 20
        while _leading(learner_b) != ["m"]:
            assert time.monotonic() < deadline, learner_b.log()
            time.sleep(0.2)
        r = httpx.post(learner_b.url + "/v1/models/m/samples", json=_batch(X, y, 200, 400), timeout=60)
        assert r.status_code == 200 and r.json()["step"] == 400, r.text
    finally:
        learner_a.proc.send_signal(signal.SIGCONT)

    # the woken learner still thinks it leads until it checks: either way its write is refused
    r = httpx.post(learner_a.url + "/v1/models/m/samples", json=_batch(X, y, 400, 450), timeout=60)
    assert r.status_code == 503 and r.json()["code"] in ("not_leader", "store_unavailable"), r.text
    deadline = time.monotonic() + 10
    while _leading(learner_a):
        assert time.monotonic() < deadline, learner_a.log()
        time.sleep(0.2)
    readiness = httpx.get(learner_a.url + "/readyz", timeout=10).json()
    assert readiness["standby"] == ["m"] and not readiness["ready"]

    r = httpx.post(learner_b.url + "/v1/models/m/samples", json=_batch(X, y, 400, 450), timeout=60)
    assert r.status_code == 200 and r.json()["accepted"] == 50, r.text
    reference = Network("mnist-shallow", seed=0)
    reference.learn_many(X, y)
    info = httpx.get(learner_b.url + "/v1/models/m", timeout=60).json()
    assert info["samples_seen"] == 450 and info["state_digest"] == reference.state_digest()
