"""The live dashboard: the page at ``/`` (static files shipped in the package, no CDN) and the
read-only views it polls or streams — ``/v1/dashboard/models``, ``/v1/models/{name}/dashboard``
(one JSON snapshot), ``/v1/models/{name}/events`` (the same snapshot as server-sent events),
``/v1/models/{name}/filters.png`` and ``/v1/models/{name}/units.png``.

Auth: the page itself is public (it holds no data); every view needs a read key like any other GET.
The page sends the key as ``Authorization: Bearer`` on every call, the event stream included (it is
read with ``fetch`` streaming, not ``EventSource``, which cannot send headers), and the pictures are
fetched the same way — so keys never travel in URLs, where proxies and browser history keep them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from service.api.deps import Read
from service.api.errors import APIError
from service.api.responses import JSON
from service.dashboard import DashboardFeed
from service.errors import ServiceError

router = APIRouter(tags=["dashboard"])

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# an event stream ends after this long and the page reconnects at once: uvicorn's graceful shutdown
# waits for open responses, so an endless stream would hold a shutdown up for its whole timeout
STREAM_SECONDS = 5.0
_NO_STORE = {"Cache-Control": "no-store"}


def feed_of(request: Request) -> DashboardFeed:
    return request.app.state.dashboard


@router.get("/", include_in_schema=False)
async def index():
    return FileResponse(STATIC_DIR / "index.html", media_type=_MEDIA_TYPES[".html"], headers=_NO_STORE)


@router.get("/static/{asset}", include_in_schema=False)
async def static_asset(asset: str):
    path = STATIC_DIR / asset
    # only the files shipped in static/ itself: no subpaths, no dot-files
    if "/" in asset or asset.startswith(".") or path.suffix not in _MEDIA_TYPES or not path.is_file():
        raise APIError(404, "not_found", f"asset: no such file {asset!r}", "asset")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_NO_STORE)


@router.get("/v1/dashboard/models", dependencies=[Read])
async def dashboard_models(request: Request):
    """Every model with its status and step (never waits for a learner)."""
    return JSON({"models": feed_of(request).models()})


@router.get("/v1/models/{name}/dashboard", dependencies=[Read])
async def dashboard_view(name: str, request: Request):
    """One dashboard snapshot: step, counters, rolling prequential accuracy and learning curve,
    samples/s, confusion matrix of the recent prequential predictions, layer health, checkpoint age."""
    return JSON(await feed_of(request).view(name))


@router.get("/v1/models/{name}/events", dependencies=[Read])
async def dashboard_events(name: str, request: Request,
                           interval: float = Query(0.5, ge=0.1, le=10.0, description="seconds between snapshots"),
                           duration: float = Query(STREAM_SECONDS, gt=0, le=60.0,
                                                   description="the stream ends after this long (reconnect)")):
    """Server-sent events: ``event: snapshot`` with the dashboard snapshot as JSON every
    ``interval`` seconds, until ``duration`` has passed (then reconnect) or the model goes away
    (``event: error`` with the reason)."""
    feed = feed_of(request)
    await feed.view(name)               # unknown model / not ready: a plain 404 / 503 before streaming

    async def stream():
        yield b"retry: 1000\n\n"
        ends = time.monotonic() + duration
        while True:
            started = time.monotonic()
            try:
                payload = await feed.view(name)
            except ServiceError as exc:
                yield b"event: error\ndata: " + orjson.dumps({"detail": exc.message, "code": exc.code}) + b"\n\n"
                return
            yield b"event: snapshot\ndata: " + orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n\n"
            if started + interval > ends:
                return
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={**_NO_STORE, "X-Accel-Buffering": "no"})


@router.get("/v1/models/{name}/filters.png", dependencies=[Read],
            responses={200: {"content": {"image/png": {}}}})
async def filters_png(name: str, request: Request):
    """Layer 1's receptive fields, one tile per unit (each min-max scaled), from the latest snapshot."""
    return Response(await feed_of(request).filters_png(name), media_type="image/png", headers=_NO_STORE)


@router.get("/v1/models/{name}/units.png", dependencies=[Read],
            responses={200: {"content": {"image/png": {}}}})
async def units_png(name: str, request: Request):
    """What each top-layer unit responds to: the average input patch that made it win, over the
    model's recent inputs (grey: the unit won on none of them)."""
    return Response(await feed_of(request).units_png(name), media_type="image/png", headers=_NO_STORE)
