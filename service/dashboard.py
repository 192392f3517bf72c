"""What the dashboard shows, computed without HTTP and without slowing learning down.

Everything cheap (step, counters, rolling accuracy, confusion matrix, learning curve, samples/s) is
read on the event loop from the learner's published snapshot and the model's
:class:`~service.activity.RecentActivity`; it never waits for the learner. The rest is cached:

* layer health (``net.stats()``) is read on the learner thread between batches, refreshed at most
  every ``health_every`` seconds; a view returns the last value instead of waiting behind a long
  learn queue;
* the latest checkpoint is asked of the store at most every ``checkpoint_every`` seconds;
* the pictures are drawn in a worker thread from the frozen snapshot, only when the model has moved
  on, and not more often than ``filters_every`` (layer-1 filters: milliseconds) or ``units_every``
  seconds (top-layer units' preferred inputs: about a second of CPU for the default preset's 1,024 units), however many
  pages ask, so watching costs the learner little CPU.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from model.visualize import layer_filters_png, unit_preferred_inputs_png
from service.errors import NotReady
from service.manager import ManagedModel, ModelManager
from service.stores.base import StoreError

log = logging.getLogger("hebb.dashboard")

# the confusion matrix is sent only for models with at most this many classes (it is classes²)
MAX_CONFUSION_CLASSES = 50


@dataclass
class _Cached:
    value: Any = None
    at: float = float("-inf")           # monotonic time of the value
    key: Any = None                     # what the value was computed for (e.g. the step)
    task: asyncio.Task | None = None    # a refresh in flight


@dataclass
class _ModelViews:
    health: _Cached = field(default_factory=_Cached)
    checkpoint: _Cached = field(default_factory=_Cached)
    images: dict[str, _Cached] = field(default_factory=dict)


class DashboardFeed:
    def __init__(self, manager_getter: Callable[[], ModelManager | None], *, health_every: float = 1.0,
                 checkpoint_every: float = 2.0, filters_every: float = 2.0, units_every: float = 10.0,
                 first_wait: float = 0.5):
        self._manager_getter = manager_getter
        self.health_every = health_every
        self.checkpoint_every = checkpoint_every
        self.image_every = {"filters": filters_every, "units": units_every}
        self.first_wait = first_wait     # a view waits this long for a value never computed before
        self._views: dict[str, _ModelViews] = {}

    @property
    def manager(self) -> ModelManager:
        manager = self._manager_getter()
        if manager is None:
            raise NotReady("the service is starting")
        return manager

    def _model(self, name: str) -> ManagedModel:
        model = self.manager.get(name)
        if model.learner is None:
            raise NotReady(f"model {name!r} is {model.status.value}")
        return model

    def _views_of(self, name: str) -> _ModelViews:
        # forget models that were deleted (a new one may reuse the name)
        for gone in set(self._views) - set(self.manager.models):
            del self._views[gone]
        return self._views.setdefault(name, _ModelViews())

    # ----------------------------------------------------------------- model list
    def models(self) -> list[dict[str, Any]]:
        """Every model with its status and step, without waiting for any learner."""
        out = []
        for name, model in list(self.manager.models.items()):
            snapshot = model.learner.snapshot if model.learner is not None else None
            out.append({"name": name, "preset": model.record.preset, "status": model.status.value,
                        "classes": model.classes, "step": snapshot.samples_seen if snapshot else None})
        return out

    # ----------------------------------------------------------------- one snapshot
    async def view(self, name: str) -> dict[str, Any]:
        """The dashboard's periodic JSON snapshot of one model."""
        model = self._model(name)
        views = self._views_of(name)
        learner, activity, counters = model.learner, model.activity, model.counters
        net = learner.net   # plain int counters, read as the metrics endpoint does (no learner wait)
        labels, _ = activity.recent_pairs()
        health = await self._refresh(views.health, self.health_every, lambda: self.manager.stats(name))
        checkpoint = await self._refresh(views.checkpoint, self.checkpoint_every, lambda: self._latest_checkpoint(name))
        wall, now = time.time(), time.monotonic()
        return {
            "name": name, "preset": model.record.preset, "status": model.status.value, "time": wall,
            "classes": model.classes, "step": learner.snapshot.samples_seen,
            "samples_seen": net.samples_seen, "labels_seen": net.labels_seen,
            "prequential_accuracy": net.prequential_accuracy, "queued_samples": learner.queued_samples,
            "samples_per_second": activity.samples_per_second(),
            "rolling": {"accuracy": activity.rolling_accuracy(), "window": len(labels),
                        "capacity": activity.pairs_kept},
            "curve": activity.curve(),
            "confusion": activity.confusion().tolist() if model.classes <= MAX_CONFUSION_CLASSES else None,
            "checkpoint": None if checkpoint is None else {
                "id": checkpoint.id, "step": checkpoint.step, "created_at": checkpoint.created_at,
                "age_seconds": max(wall - checkpoint.created_at, 0.0)},
            "layers": None if health is None else health["layers"],
            "layers_age_seconds": None if health is None else now - views.health.at,
            "predictions_served": counters.predictions_served, "feedback_applied": counters.feedback_applied,
        }

    async def _latest_checkpoint(self, name: str):
        try:
            return await self.manager.store.latest_checkpoint(name)
        except StoreError:
            return None

    async def _refresh(self, cached: _Cached, every: float, compute: Callable) -> Any:
        """The cached value, refreshed in the background when older than ``every`` seconds. Only a
        value never computed before is waited for (at most ``first_wait`` seconds)."""
        now = time.monotonic()
        if cached.task is None and now - cached.at >= every:
            cached.task = asyncio.ensure_future(compute())
            cached.task.add_done_callback(lambda task: _store(cached, task))
        if cached.value is None and cached.task is not None:
            await asyncio.wait({cached.task}, timeout=self.first_wait)
        return cached.value

    # ----------------------------------------------------------------- pictures
    async def filters_png(self, name: str) -> bytes:
        """Layer 1's receptive fields (each filter min-max scaled) as PNG."""
        model = self._model(name)
        return await self._image(name, "filters", lambda snapshot: layer_filters_png(model.learner.net, snapshot))

    async def units_png(self, name: str) -> bytes:
        """For each top-layer unit, the average input patch that made it win over the model's recent
        inputs (a grey cell: the unit did not win on any of them)."""
        model = self._model(name)
        inputs = model.activity.recent_inputs()
        return await self._image(name, "units",
                                 lambda snapshot: unit_preferred_inputs_png(model.learner.net, inputs, snapshot))

    async def _image(self, name: str, kind: str, draw: Callable) -> bytes:
        model = self._model(name)
        cached = self._views_of(name).images.setdefault(kind, _Cached())
        snapshot = model.learner.snapshot
        stale = cached.key != snapshot.samples_seen and time.monotonic() - cached.at >= self.image_every[kind]
        if cached.task is None and (cached.value is None or stale):
            cached.task = asyncio.ensure_future(asyncio.to_thread(draw, snapshot))
            cached.task.add_done_callback(lambda task, step=snapshot.samples_seen: _store(cached, task, step))
        if cached.value is None:            # first picture of this model: wait for it
            return await asyncio.shield(cached.task)
        return cached.value


def _store(cached: _Cached, task: asyncio.Task, key: Any = None) -> None:
    cached.task = None
    if task.cancelled():
        return
    if task.exception() is not None:
        log.warning("dashboard view failed", extra={"error": repr(task.exception())})
        cached.at = time.monotonic()     # retry after the usual interval, not on every request
        return
    cached.value, cached.key, cached.at = task.result(), key, time.monotonic()
