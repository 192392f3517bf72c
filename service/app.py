"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import AsyncIterator

from fastapi import FastAPI

from model.blas import warm_up as warm_up_blas
from model.portable_blas import openblas_kernels
from service import __version__
from service.api import dashboard, health, models, oip
from service.api.errors import install_error_handlers
from service.api.middleware import RequestMiddleware
from service.api.responses import JSON
from service.dashboard import DashboardFeed
from service.metrics import Metrics
from service.roles import build_role
from service.settings import Settings
from service.stores import Store, make_store

log = logging.getLogger("hebb.app")


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app. The store (from ``settings.store`` unless given) is opened at startup; models
    are recovered in the background so ``/healthz`` answers at once and ``/readyz`` turns 200 when done."""
    settings = settings or Settings()
    api_keys = settings.api_key_scopes()   # fail at startup on a malformed HEBB_API_KEYS
    store = store or make_store(settings.store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up_blas()  # compile the readout's nogil BLAS calls before any request is waiting
        await store.open()
        # everything imported so far (numba, scipy, pydantic, fastapi: ~190k objects) lives as long
        # as the process; left in the collector's oldest generation, each full collection walked
        # it again, a ~90 ms pause about once a second under load
        gc.collect()
        gc.freeze()
        # the role (all / learner / predictor, service.roles) picks the manager and its durability policy
        manager, durability = build_role(settings, store, prediction_retention=settings.prediction_retention,
                                         prediction_ttl=settings.prediction_ttl_seconds,
                                         seen_ids_window=settings.seen_ids_window,
                                         coalesce_samples=settings.learn_coalesce_samples,
                                         learner_nice=settings.learner_nice)
        app.state.manager = manager
        app.state.durability = durability
        recovery = asyncio.create_task(durability.recover_then_schedule(manager), name="hebb-recovery")
        log.info("service starting", extra={"store": store.url, "role": settings.role, "auth": bool(api_keys),
                                            "version": __version__, "openblas_kernels": openblas_kernels()})
        try:
            yield
        finally:
            if not recovery.done():
                recovery.cancel()
            with contextlib.suppress(BaseException):
                await recovery
            await durability.close(manager)  # final checkpoints, queued behind every accepted write
            await manager.close()          # drains every learner queue
            await store.close()
            log.info("service stopped")

    app = FastAPI(title="Hebb", version=__version__, lifespan=lifespan, default_response_class=JSON,
                  description="Online learning with local rules: POST samples to learn, predict at any moment.")
    app.state.settings = settings
    app.state.api_keys = api_keys
    app.state.manager = None
    app.state.metrics = Metrics(lambda: app.state.manager)
    app.state.dashboard = DashboardFeed(lambda: app.state.manager)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(oip.router)
    app.include_router(dashboard.router)
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes, metrics=app.state.metrics,
                       log_requests=settings.access_log)
    return app
