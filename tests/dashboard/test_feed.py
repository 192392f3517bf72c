"""The dashboard feed in-process: cached pictures, background refreshes, no waiting on a busy learner."""

from __future__ import annotations

import asyncio

import numpy as np

from service.dashboard import DashboardFeed


def test_pictures_are_cached_per_step_and_redrawn_in_the_background(mnist, running_manager):
    X = mnist["train_images"][:120].reshape(-1, 784)

    async def scenario():
        async with running_manager() as manager:
            feed = DashboardFeed(lambda: manager, filters_every=0.0, units_every=3600.0)
            await manager.learn("m", X[:60], [-1] * 60, [None] * 60)
            first_filters = await feed.filters_png("m")       # first picture: waited for
            first_units = await feed.units_png("m")
            assert await feed.filters_png("m") is first_filters   # same step: the cached bytes
            await manager.learn("m", X[60:], [-1] * 60, [None] * 60)
            assert await feed.filters_png("m") is first_filters   # stale: old one now, redraw started
            for _ in range(200):
                fresh = await feed.filters_png("m")
                if fresh is not first_filters:
                    break
                await asyncio.sleep(0.02)
            assert fresh != first_filters                      # the model moved on: a new picture
            assert await feed.units_png("m") is first_units    # within units_every: not redrawn

    asyncio.run(scenario())


def test_a_view_does_not_wait_for_a_busy_learner(mnist, running_manager):
    X = mnist["train_images"][:2000].reshape(-1, 784)
    y = mnist["train_labels"][:2000].astype(np.int64)

    async def scenario():
        async with running_manager() as manager:
            feed = DashboardFeed(lambda: manager, health_every=0.0, first_wait=0.05)   # always refresh
            await manager.learn("m", X[:100], y[:100].tolist(), [None] * 100)
            view = await feed.view("m")
            assert view["step"] == 100
            busy = asyncio.ensure_future(manager.learn("m", X[100:], y[100:].tolist(), [None] * 1900))
            while manager.models["m"].learner.queued_samples == 0:
                await asyncio.sleep(0.001)
            loop = asyncio.get_running_loop()
            started = loop.time()
            view = await feed.view("m")                         # layer health comes from the learner
            took = loop.time() - started
            assert not busy.done(), "the learn call finished too early to tell"
            assert took < 0.5, f"a view waited {took:.2f} s for the learner"
            assert view["layers"] is not None                   # the last value, not a wait
            await busy
            assert (await feed.view("m"))["step"] == 2000

    asyncio.run(scenario())
