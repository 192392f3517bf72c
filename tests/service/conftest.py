"""Fixtures that run the REAL service: ``hebb serve`` in a subprocess on a free port, talked to over HTTP."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from service.serve_process import ServeProcess

WRITE_KEY, READ_KEY = "test-write-key", "test-read-key"


class Server(ServeProcess):
    """A started, live ``hebb serve`` subprocess (memory store unless ``env`` says otherwise);
    ``stop()`` sends SIGTERM (graceful shutdown) and waits."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, args: list[str] = ()):
        super().__init__(tmp, args, {"HEBB_LOG_LEVEL": "info", "HEBB_STORE": "memory://", **(env or {})}, name="server")
        self.start().wait_for("/healthz")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """No auth, the default (file) store in a temp dir, a 4 MiB body limit (the 413 test sends more)."""
    tmp = tmp_path_factory.mktemp("srv")
    srv = Server(tmp, {"HEBB_MAX_BODY_BYTES": str(4 * 1024 * 1024), "HEBB_STORE": f"file://{tmp / 'data'}"})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    """API keys on, and only 2 stored predictions per model (so older ones expire)."""
    srv = Server(tmp_path_factory.mktemp("auth"), {"HEBB_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read",
                                                   "HEBB_PREDICTION_RETENTION": "2", "HEBB_STORE": "memory://"})
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


_counter = iter(range(10**9))


@pytest.fixture
def model(client, request):
    """A fresh ``mnist-shallow`` model (seed 0) with a unique name; deleted afterwards."""
    name = f"m{next(_counter)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
    r = client.post("/v1/models", json={"name": name, "preset": "mnist-shallow", "seed": 0})
    assert r.status_code == 201, r.text
    yield name
    client.delete(f"/v1/models/{name}")


@pytest.fixture(scope="session")
def digits(mnist):
    """The first 2,000 MNIST training images (uint8[N, 784]) and labels."""
    return mnist["train_images"][:2000].reshape(-1, 784), mnist["train_labels"][:2000]


def b64(row: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(row, np.uint8).tobytes()).decode()


def samples_body(X, y=None, ids=None) -> dict:
    return {"samples": [{"x_b64": b64(x), **({"label": int(y[i])} if y is not None else {}),
                         **({"id": ids[i]} if ids is not None else {})} for i, x in enumerate(X)]}


def digest(client: httpx.Client, name: str) -> str:
    r = client.get(f"/v1/models/{name}")
    assert r.status_code == 200, r.text
    return r.json()["state_digest"]


@pytest.fixture(scope="session")
def tools():
    """Helpers for test modules (conftest modules cannot be imported under --import-mode=importlib)."""
    return SimpleNamespace(b64=b64, samples_body=samples_body, digest=digest, Server=Server,
                           WRITE_KEY=WRITE_KEY, READ_KEY=READ_KEY)
