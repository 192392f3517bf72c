"""Dynamic batching of prediction requests (service.batching)."""

import asyncio
import threading

import numpy as np
import pytest

from service.batching import PredictBatcher


class Recorder:
    """A predict function that records the batch sizes it was called with."""

    def __init__(self, offset: float = 0.0, gate: threading.Event | None = None):
        self.calls: list[int] = []
        self.offset = offset
        self.gate = gate

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(len(X))
        return X.sum(axis=1, keepdims=True) + self.offset


def _rows(i: int, n: int = 1) -> np.ndarray:
    return np.full((n, 3), float(i))


def test_requests_arriving_together_share_one_pass_and_get_their_own_rows():
    async def scenario():
        batcher = PredictBatcher(max_samples=1000)
        fn = Recorder()
        results = await asyncio.gather(*(batcher.submit(fn, _rows(i, n=1 + i % 3)) for i in range(20)))
        return batcher, fn, results

    batcher, fn, results = asyncio.run(scenario())
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, np.full((1 + i % 3, 1), 3.0 * i))
    assert sum(fn.calls) == sum(1 + i % 3 for i in range(20))
    assert len(fn.calls) < 20 and batcher.batches == len(fn.calls)


def test_requests_queued_during_a_pass_form_the_next_batch_within_the_size_limit():
    async def scenario():
        gate = threading.Event()
        fn = Recorder(gate=gate)
        batcher = PredictBatcher(max_samples=8)
        first = asyncio.ensure_future(batcher.submit(fn, _rows(0)))
        await asyncio.sleep(0.05)            # the first pass is running (blocked on the gate)
        rest = [asyncio.ensure_future(batcher.submit(fn, _rows(i, 3))) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(first, *rest)
        return fn

    fn = asyncio.run(scenario())
    assert fn.calls[0] == 1                      # the first request did not wait for others
    assert all(size <= 8 for size in fn.calls[1:])
    assert sum(fn.calls[1:]) == 15 and len(fn.calls) >= 3


def test_different_predict_functions_are_never_mixed():
    async def scenario():
        old, new = Recorder(offset=0.0), Recorder(offset=100.0)
        batcher = PredictBatcher()
        calls = [batcher.submit(old if i % 2 else new, _rows(i)) for i in range(6)]
        return old, new, await asyncio.gather(*calls)

    old, new, results = asyncio.run(scenario())
    for i, result in enumerate(results):
        assert result[0, 0] == 3.0 * i + (0.0 if i % 2 else 100.0)
    assert sum(old.calls) == 3 and sum(new.calls) == 3


def test_a_failing_pass_fails_its_requests_and_the_next_batch_still_runs():
    async def scenario():
        batcher = PredictBatcher()

        def broken(X):
            raise ValueError("boom")

        failing = [batcher.submit(broken, _rows(i)) for i in range(3)]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        ok = await batcher.submit(Recorder(), _rows(7))
        return outcomes, ok

    outcomes, ok = asyncio.run(scenario())
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert ok[0, 0] == 21.0


def test_a_cancelled_request_does_not_break_the_others():
    async def scenario():
        gate = threading.Event()
        fn = Recorder(gate=gate)
        batcher = PredictBatcher()
        first = asyncio.ensure_future(batcher.submit(fn, _rows(0)))
        await asyncio.sleep(0.05)
        doomed = asyncio.ensure_future(batcher.submit(fn, _rows(1)))
        kept = asyncio.ensure_future(batcher.submit(fn, _rows(2)))
        await asyncio.sleep(0.01)
        doomed.cancel()
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return await kept

    assert asyncio.run(scenario())[0, 0] == 6.0
