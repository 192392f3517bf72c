"""Durability fixtures: a private ``redis-server`` with AOF (``appendfsync always``) on a free port,
and a ``store`` fixture parametrized over the durable backends so one suite runs against both."""

from __future__ import annotations

import uuid

import pytest

from service.redis_process import RedisProcess
from service.stores import make_store

DURABLE_BACKENDS = ["file", "redis"]


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory):
    """One AOF redis-server for the tests that do not stop it; each test uses its own key prefix."""
    with RedisProcess(tmp_path_factory.mktemp("redis-shared")) as server:
        yield server


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server owned by one test, which may stop, kill -9 and restart it."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.kill()


def store_url(backend: str, tmp_path, redis: RedisProcess) -> str:
    if backend == "file":
        return f"file://{tmp_path / 'store'}"
    return f"{redis.url}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=DURABLE_BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def durable_url(backend, tmp_path, shared_redis) -> str:
    """A fresh store URL for the backend under test (file dir or Redis key prefix)."""
    return store_url(backend, tmp_path, shared_redis)


@pytest.fixture
async def store(durable_url):
    store = make_store(durable_url)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
