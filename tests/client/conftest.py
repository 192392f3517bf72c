"""Fixtures for the SDK tests: a real ``hebb serve`` process on a free port (with API keys), and a
fault-injecting HTTP proxy that can put 429/502/503/504 answers and dropped connections in front
of it."""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
try:
    import hebb_client  # noqa: F401
except ImportError:  # the SDK is its own distribution; fall back to the source tree
    sys.path.insert(0, str(REPO / "clients" / "python"))

WRITE_KEY, READ_KEY = "test-write-key", "test-read-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path
    write_key: str = WRITE_KEY
    read_key: str = READ_KEY

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_server(tmp_dir: Path, env_extra: dict[str, str] | None = None, timeout: float = 60.0,
                 port: int | None = None) -> LiveServer:
    port = port or free_port()
    log_path = tmp_dir / f"server-{port}-{time.monotonic_ns()}.log"
    env = {**os.environ, "HEBB_STORE": "memory://"}  # nothing written to disk unless a test asks for a store
    env.update({"HEBB_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read", "HEBB_LOG_FORMAT": "text",
                "HEBB_ACCESS_LOG": "false", **(env_extra or {})})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hebb serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"hebb serve did not come up in {timeout}s:\n{server.log()}")


def stop_server(server: LiveServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("hebb-server"))
    yield server
    stop_server(server)


@pytest.fixture
def server_factory(tmp_path):
    """``start(env_extra=None, port=None)`` → a fresh ``hebb serve`` process, stopped after the test."""
    started: list[LiveServer] = []

    def start(env_extra: dict[str, str] | None = None, port: int | None = None) -> LiveServer:
        server = start_server(tmp_path, env_extra, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def model_name(request) -> str:
    """A model name unique to the test (every test shares one server)."""
    return ("t-" + request.node.name.replace("[", "-").replace("]", "").replace("_", "-"))[:48]


class FaultProxy:
    """A minimal HTTP/1.1 proxy in front of ``upstream``. Scripted faults apply, in order, to the
    requests whose path ends with ``path_suffix``:

    - ``("status", code)``: answer ``code`` (with ``Retry-After: 0``) without forwarding;
    - ``("drop_before",)``: reset the connection without forwarding;
    - ``("drop_after",)``: forward (the server acts on it), then reset instead of answering;
    - ``("status_after", code)``: forward, then answer ``code`` instead of the server's answer;
    - ``("pass",)``: forward normally (to place faults on later requests).

    Every other request is forwarded as is. ``forwarded`` counts requests that reached the server.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.faults: collections.deque = collections.deque()
        self.path_suffix = ""
        self.forwarded = collections.Counter()
        self.applied: list[tuple] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def script(self, path_suffix: str, *faults: tuple) -> None:
        self.path_suffix = path_suffix
        self.faults = collections.deque(faults)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=120)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def shutdown():
            self._server.close()
            await self._client.aclose()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
                headers = [(k.strip(), v.strip()) for k, v in headers]
                length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                body = await reader.readexactly(length) if length else b""
                fault = None
                if self.faults and target.split("?")[0].endswith(self.path_suffix):
                    fault = self.faults.popleft()
                    self.applied.append(fault)
                if fault and fault[0] == "status":
                    await self._reply(writer, fault[1], b'{"detail": "injected fault"}', "application/json")
                    continue
                if fault and fault[0] == "drop_before":
                    writer.transport.abort()
                    return
                drop = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
                upstream = await self._client.request(
                    method, target, content=body, headers=[(k, v) for k, v in headers if k.lower() not in drop])
                self.forwarded[target.split("?")[0]] += 1
                if fault and fault[0] == "drop_after":
                    writer.transport.abort()
                    return
                if fault and fault[0] == "status_after":
                    await self._reply(writer, fault[1], b'{"detail": "injected fault"}', "application/json")
                    continue
                await self._reply(writer, upstream.status_code, upstream.content,
                                  upstream.headers.get("content-type", "application/json"))
        finally:
            if not writer.transport.is_closing():
                writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str) -> None:
        reason = httpx.codes.get_reason_phrase(status) or "Status"
        retry_after = "Retry-After: 0\r\n" if status in (429, 503) else ""
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n{retry_after}\r\n").encode("latin-1")
        writer.write(head + body)
        await writer.drain()


@pytest.fixture
def fault_proxy(live_server):
    proxy = FaultProxy(live_server.url)
    yield proxy
    proxy.close()
