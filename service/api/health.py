"""Liveness, readiness and Prometheus metrics (open: no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.api.deps import Manager
from service.api.responses import JSON
from service.manager import ModelManager

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz():
    """200 while the process is alive."""
    return JSON({"status": "ok"})


@router.get("/readyz")
async def readyz(manager: ModelManager = Manager):
    """200 only when every model is loaded and caught up with its log; 503 while recovering."""
    state = manager.readiness()
    return JSON(state, status_code=200 if state["ready"] else 503)


@router.get("/metrics")
async def metrics(request: Request):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
