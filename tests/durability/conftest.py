"""Durability fixtures: a private ``redis-server`` with AOF (``appendfsync always``) on a free port,
and a ``store`` fixture parametrized over the durable backends so one suite runs against both."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.redis_process import RedisProcess
from service.serve_process import ServeProcess
from service.stores import make_store


DURABLE_BACKENDS = ["file", "redis"]


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory):
    """One AOF redis-server for the tests that do not stop it; each test uses its own key prefix."""
    with RedisProcess(tmp_path_factory.mktemp("redis-shared")) as server:
        yield server


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


# ----------------------------------------------------------------------------- the real service


class ServiceProcess(ServeProcess):
    """``hebb serve --store URL`` in a subprocess on a fixed port, so it can be killed with SIGKILL
    and started again at the same address (clients keep retrying the same URL)."""

    def __init__(self, store_url: str | None, workdir: Path, env: dict[str, str] | None = None):
        store = ["--store", store_url] if store_url else []   # None: the default store
        super().__init__(workdir, store, {"HEBB_ACCESS_LOG": "false", **(env or {})})
        self.store_url = store_url

    def wait_ready(self, timeout: float = 90.0) -> dict:
        return self.wait_for("/readyz", timeout).json()


@pytest.fixture
def service_factory(tmp_path):
    """``make(store_url, **env)`` → a started ServiceProcess; every one is stopped at teardown."""
    made: list[ServiceProcess] = []

    def make(store_url: str | None, **env: str) -> ServiceProcess:
        svc = ServiceProcess(store_url, tmp_path, {k: str(v) for k, v in env.items()}).start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        if svc.proc is not None and svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()


@pytest.fixture(scope="session")
def stream(mnist):
    """The durability stream: the first 2,000 MNIST training samples, each with a stable id."""
    X = mnist["train_images"][:2000].reshape(-1, 784)
    y = mnist["train_labels"][:2000]
    return SimpleNamespace(X=X, y=y, ids=[f"s{i:05d}" for i in range(len(X))])


def batch_body(stream, start: int, stop: int) -> dict:
    return {"samples": [{"id": stream.ids[i], "label": int(stream.y[i]),
                         "x_b64": base64.b64encode(stream.X[i].tobytes()).decode()} for i in range(start, stop)]}


@pytest.fixture(scope="session")
def reference_digest(stream):
    """``digest(n)``: state digest of an uninterrupted in-process run over the first n samples."""
    from model import Network

    cache: dict[tuple[str, int], str] = {}

    def digest(n: int, preset: str = "mnist-shallow") -> str:
        if (preset, n) not in cache:
            net = Network(preset, seed=0)
            net.learn_many(stream.X[:n], stream.y[:n])
            cache[(preset, n)] = net.state_digest()
        return cache[(preset, n)]

    return digest


@pytest.fixture(scope="session")
def helpers():
    """Functions for test modules (conftest modules are not importable under --import-mode=importlib)."""
    return SimpleNamespace(batch_body=batch_body, ServiceProcess=ServiceProcess)


@pytest.fixture
def service_store(backend, tmp_path, request):
    """A store URL for a service under test, with the handle to corrupt/inspect it: for Redis a
    private AOF server (the test may stop it), for files a directory."""
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        return SimpleNamespace(backend=backend, url=server.url, redis=server)
    return SimpleNamespace(backend=backend, url=f"file://{tmp_path / 'hebb-data'}", redis=None)
