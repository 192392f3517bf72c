"""Shared fixtures: where the dataset lives (``HEBB_DATA_DIR`` or ``../shared/datasets/mnist``)."""

from __future__ import annotations

# first: importing the engine pins OpenBLAS's kernel family before anything loads numpy
# (model/portable_blas.py), so this process learns with the same kernels as the servers it starts
import model  # noqa: F401, I001

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def dataset_dir() -> Path:
    return Path(os.environ.get("HEBB_DATA_DIR") or REPO.parent / "shared" / "datasets" / "mnist")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = dataset_dir()
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST not found in {path}; set HEBB_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def mnist(data_dir):
    from model.data import load_dataset

    return load_dataset(data_dir)


@pytest.fixture
def redis_server(tmp_path):
    """A private AOF redis-server owned by one test, which may stop, kill -9 and restart it."""
    from service.redis_process import RedisProcess

    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.kill()
