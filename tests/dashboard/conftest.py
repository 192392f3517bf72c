"""Dashboard tests run the real service (``hebb serve`` on a free port, ``memory://`` store), using
the service tests' :class:`Server` helper."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import pytest

from service.manager import ModelManager
from service.stores import make_store

_SERVICE_CONFTEST = Path(__file__).resolve().parents[1] / "service" / "conftest.py"


def _service_support():
    # conftest modules cannot be imported by name under --import-mode=importlib: load it by path
    spec = importlib.util.spec_from_file_location("hebb_service_test_support", _SERVICE_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


support = _service_support()
Server, b64, samples_body = support.Server, support.b64, support.samples_body
WRITE_KEY, READ_KEY = support.WRITE_KEY, support.READ_KEY


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("dashboard"), {"HEBB_STORE": "memory://"})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def helpers():
    """Module-level helpers for test files (conftest modules cannot be imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(Server=Server, b64=b64, samples_body=samples_body, WRITE_KEY=WRITE_KEY, READ_KEY=READ_KEY)


@contextlib.asynccontextmanager
async def _running_manager():
    store = make_store("memory://")
    await store.open()
    manager = ModelManager(store)
    await manager.start()
    try:
        await manager.create_model("m", "mnist-shallow")
        yield manager
    finally:
        await manager.close()
        await store.close()


@pytest.fixture
def running_manager():
    """``async with running_manager() as manager``: the service layer in-process (memory store),
    with one ``mnist-shallow`` model named ``m``."""
    return _running_manager
