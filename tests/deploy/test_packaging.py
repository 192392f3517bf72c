"""The image's build, without Docker: the wheel builds from exactly what deploy/Dockerfile copies,
installs into a fresh venv (dependencies from the package index) and serves from there — /healthz,
a model, a learn and a predict — with no access to the repository's sources.

Slow (~1.5 min: the fresh venv installs numba, scipy, ...): run with ``pytest -m slow tests/deploy``."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.redis_process import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def build_stage_copies() -> list[str]:
    """The sources the Dockerfile's build stage copies (``COPY <src...> <dest>``)."""
    text = (REPO / "deploy" / "Dockerfile").read_text()
    build_stage = text.split("FROM ", 2)[1]
    sources = []
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


def test_wheel_builds_installs_into_a_fresh_venv_and_serves(tmp_path, mnist):
    context = tmp_path / "context"
    context.mkdir()
    for source in build_stage_copies():
        path = REPO / source
        assert path.exists(), f"deploy/Dockerfile copies {source}, which is missing from the repository"
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, context / source)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps",
                            "-w", str(tmp_path / "dist"), str(context)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("hebb-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "model/network.py" in names and "service/roles.py" in names and "service/stores/redis_store.py" in names
    assert not any(n.startswith("tests/") for n in names)
    assert re.search(r"^hebb = service\.cli:main$", entry_points, re.M)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                                "-q", str(wheel)], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]

    workdir = tmp_path / "run"              # not the repository: only the installed package can be imported
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEBB_", "PYTHON"))}
    located = subprocess.run([str(venv / "bin" / "python"), "-c", "import service, model; print(service.__file__)"],
                             cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert located.returncode == 0 and located.stdout.startswith(str(venv)), located

    refused = subprocess.run([str(venv / "bin" / "hebb"), "serve", "--role", "predictor", "--store", "memory://"],
                             cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "needs a redis:// store" in refused.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen([str(venv / "bin" / "hebb"), "serve", "--port", str(port)], cwd=workdir,
                                  env={**env, "HEBB_STORE": "memory://"}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        r = httpx.post(url + "/v1/models", json={"name": "m", "preset": "mnist-shallow"}, timeout=120)
        assert r.status_code == 201, r.text
        X = mnist["train_images"][:200].reshape(-1, 784)
        y = mnist["train_labels"][:200]
        body = {"samples": [{"id": str(i), "label": int(y[i]), "x_b64": base64.b64encode(X[i].tobytes()).decode()}
                            for i in range(len(X))]}
        r = httpx.post(url + "/v1/models/m/samples", json=body, timeout=120)
        assert r.status_code == 200 and r.json()["accepted"] == 200 and r.json()["step"] == 200, r.text
        r = httpx.post(url + "/v1/models/m/predict", json={"inputs": [{"x_b64": body["samples"][0]["x_b64"]}]},
                       timeout=60)
        assert r.status_code == 200, r.text
        probabilities = np.array(r.json()["predictions"][0]["probabilities"])
        assert r.json()["step"] == 200 and probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-4
    finally:
        server.terminate()
        server.wait(60)
