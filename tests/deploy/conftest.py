"""Deploy fixtures: ``hebb serve --role ...`` subprocesses sharing one private AOF redis-server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from service.serve_process import ServeProcess



class RoleProcess(ServeProcess):
    """``hebb serve --role ROLE --store URL`` on a free port (started at once); killable with SIGKILL."""

    def __init__(self, role: str, store_url: str, workdir: Path, env: dict[str, str] | None = None):
        super().__init__(workdir, ["--role", role, "--store", store_url], {"HEBB_ACCESS_LOG": "false", **(env or {})},
                         name=role)
        self.role = role
        self.start()

    def wait_live(self, timeout: float = 90.0) -> "RoleProcess":
        self.wait_for("/healthz", timeout)
        return self


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
