"""A ``hebb serve`` child process on a free port, for tests and benchmarks that need the real server.

It logs to a file, can wait for any endpoint to answer, stops gracefully (SIGTERM: drain, final
checkpoints) or is killed (SIGKILL), and can be started again on the same port (a new log file per
start), so clients keep retrying the same URL across a crash. The environment is hermetic:
inherited ``HEBB_*`` settings (except the dataset location) do not leak in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

from service.redis_process import free_port

REPO = Path(__file__).resolve().parents[1]


class ServeProcess:
    """``hebb serve --port PORT *args`` with ``env`` on top of the hermetic environment."""

    def __init__(self, workdir: str | Path, args: list[str] | tuple[str, ...] = (), env: dict[str, str] | None = None,
                 port: int | None = None, name: str = "service"):
        self.workdir = Path(workdir)
        self.args = [str(a) for a in args]
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HEBB_") or k == "HEBB_DATA_DIR"}
        self.env = {**inherited, "PYTHONPATH": str(REPO), **{k: str(v) for k, v in (env or {}).items()}}
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log = None

    def start(self) -> "ServeProcess":
        self.starts += 1
        self.log_path = self.workdir / f"{self.name}-{self.port}-{self.starts}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(self.port), *self.args],
                                     cwd=self.workdir, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_for(self, path: str = "/healthz", timeout: float = 60.0,
                 done: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200) -> httpx.Response:
        """Poll ``GET path`` until ``done(response)``; raise with the server's log if it exits or times out."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                last = httpx.get(self.url + path, timeout=2.0)
                if done(last):
                    return last
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        answer = None if last is None else f"{last.status_code} {last.text[:300]}"
        raise RuntimeError(f"{self.name}: {path} not ready after {timeout}s (last answer {answer}):\n{self.log()[-6000:]}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait (graceful shutdown); SIGKILL after ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return None if self.proc is None else self.proc.returncode

    def log(self) -> str:
        """Everything every start of this process wrote."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}-{self.port}-*.log")))
