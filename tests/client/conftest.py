"""Fixtures for the SDK tests: a real ``hebb serve`` process on a free port (with API keys), and a
fault-injecting HTTP proxy that can put 429/502/503/504 answers and dropped connections in front
of it."""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
from pathlib import Path

import httpx
import pytest

from service.redis_process import free_port
from service.serve_process import ServeProcess

REPO = Path(__file__).resolve().parents[2]
try:
    import hebb_client  # noqa: F401
except ImportError:  # the SDK is its own distribution; fall back to the source tree
    sys.path.insert(0, str(REPO / "clients" / "python"))

WRITE_KEY, READ_KEY = "test-write-key", "test-read-key"


class LiveServer(ServeProcess):
    """A live ``hebb serve`` with a write and a read API key (memory store unless ``env_extra`` says otherwise)."""

    write_key = WRITE_KEY
    read_key = READ_KEY

    def __init__(self, tmp_dir: Path, env_extra: dict[str, str] | None = None, timeout: float = 60.0,
                 port: int | None = None):
        env = {"HEBB_STORE": "memory://", "HEBB_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read",
               "HEBB_LOG_FORMAT": "text", "HEBB_ACCESS_LOG": "false", **(env_extra or {})}
        super().__init__(tmp_dir, ["--host", "127.0.0.1"], env, port=port, name="server")
        self.start()
        try:
            self.wait_for("/healthz", timeout)
        except RuntimeError:
            self.stop()
            raise


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("hebb-server"))
    yield server
    server.stop(20)


@pytest.fixture
def server_factory(tmp_path):
    """``start(env_extra=None, port=None)`` → a fresh ``hebb serve`` process, stopped after the test."""
    started: list[LiveServer] = []

    def start(env_extra: dict[str, str] | None = None, port: int | None = None) -> LiveServer:
        server = LiveServer(tmp_path, env_extra, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(20)


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
