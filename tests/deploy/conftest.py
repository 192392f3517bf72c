"""Deploy fixtures: ``hebb serve --role ...`` subprocesses sharing one private AOF redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from service.redis_process import RedisProcess, free_port

REPO = Path(__file__).resolve().parents[2]


class RoleProcess:
    """``hebb serve --role ROLE --store URL`` on a free port; killable with SIGKILL."""

    def __init__(self, role: str, store_url: str, workdir: Path, env: dict[str, str] | None = None):
        self.role = role
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{role}-{self.port}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HEBB_") or k == "HEBB_DATA_DIR"}
        full_env = {**inherited, "PYTHONPATH": str(REPO), "HEBB_ACCESS_LOG": "false", **(env or {})}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(self.port),
                                      "--role", role, "--store", store_url],
                                     cwd=workdir, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_live(self, timeout: float = 90.0) -> "RoleProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.role} did not come up:\n{self.log()}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def redis_aof(tmp_path):
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def roles(tmp_path):
    """``start(role, store_url, **env)`` → a live RoleProcess; all are stopped at teardown."""
    made: list[RoleProcess] = []

    def start(role: str, store_url: str, **env: str) -> RoleProcess:
        proc = RoleProcess(role, store_url, tmp_path, {k: str(v) for k, v in env.items()})
        made.append(proc)
        return proc

    yield SimpleNamespace(start=start, made=made)
    for proc in made:
        proc.stop()
