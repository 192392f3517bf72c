"""Dynamic batching of prediction requests.

Concurrent small prediction requests of one model are coalesced into one batched forward pass:
a batched pass costs far less per sample than one pass per request (one kernel call per layer
instead of one per request and layer; the blocks of a batch run on every core), and it runs on a
worker thread, so the event loop keeps accepting requests meanwhile. A request never waits for a
timer: the first one starts a batch at once; requests arriving while a batch runs form the next one.

>>> import asyncio, numpy as np
>>> async def demo():
...     batcher = PredictBatcher(max_samples=64)
...     double = lambda X: X * 2                 # stands in for a snapshot's predict_proba_many
...     results = await asyncio.gather(*(batcher.submit(double, np.full((1, 2), i)) for i in range(3)))
...     return [r.tolist() for r in results]
>>> asyncio.run(demo())
[[[0, 0]], [[2, 2]], [[4, 4]]]
"""

from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]


class PredictBatcher:
    """Runs ``fn(concatenated inputs)`` for the requests queued together, in arrival order.

    Requests queued together share one ``fn`` call, so they must share ``fn`` (compared with ``==``:
    the manager passes its current snapshot's bound ``predict_proba_many``; a request with another
    ``fn`` starts the next batch). At most ``max_samples`` samples go into one call."""

    def __init__(self, max_samples: int = 512):
        self.max_samples = max_samples
        self._queue: list[tuple[PredictFn, np.ndarray, asyncio.Future]] = []
        self._draining = False
        self.batches = 0                 # forward passes run (for metrics and tests)

    async def submit(self, fn: PredictFn, inputs: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((fn, inputs, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _next_batch(self) -> list[tuple[PredictFn, np.ndarray, asyncio.Future]]:
        fn = self._queue[0][0]
        size = 0
        take = 0
        for queued_fn, inputs, _ in self._queue:
            if queued_fn != fn or (take and size + len(inputs) > self.max_samples):
                break
            size += len(inputs)
            take += 1
        batch, self._queue = self._queue[:take], self._queue[take:]
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [item for item in self._next_batch() if not item[2].cancelled()]
                if not batch:
                    continue
                fn = batch[0][0]
                inputs = np.concatenate([item[1] for item in batch]) if len(batch) > 1 else batch[0][1]
                try:
                    outputs = await asyncio.to_thread(fn, inputs)
                except Exception as exc:  # every request of the batch gets the error
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                start = 0
                for _, item_inputs, future in batch:
                    if not future.done():
                        future.set_result(outputs[start:start + len(item_inputs)])
                    start += len(item_inputs)
        finally:
            self._draining = False
