"""The bounded prediction store (service.retention.PredictionStore)."""

import numpy as np

from service.retention import PredictionStore


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _batch(start: int, n: int, size: int = 6, classes: int = 3):
    ids = [f"p{start + i}" for i in range(n)]
    pixels = (np.arange(start, start + n)[:, None] + np.zeros((1, size), np.int64)).astype(np.uint8)
    labels = np.arange(start, start + n) % classes
    probas = np.full((n, classes), 1.0 / classes, np.float32)
    return ids, pixels, labels, probas


def test_keeps_the_newest_capacity_predictions_across_growth_and_wrap_around():
    store = PredictionStore(capacity=2500, ttl=3600, clock=Clock())
    for start in range(0, 4000, 700):                       # grows 1024 -> 2048 -> 2500, then wraps
        store.add_many(*_batch(start, min(700, 4000 - start)), step=start)
    assert len(store) == 2500
    assert store.get("p1499") is None and store.get("p0") is None
    for k in (1500, 2600, 3999):
        item = store.get(f"p{k}")
        assert item.label == k % 3 and item.pixels.tolist() == [k % 256] * 6
        assert item.step == k - k % 700 and item.feedback_label is None


def test_expired_predictions_are_gone_and_feedback_is_recorded_once_per_slot():
    clock = Clock()
    store = PredictionStore(capacity=100, ttl=10, clock=clock)
    store.add_many(*_batch(0, 5), step=1)
    clock.now += 5
    store.add_many(*_batch(5, 5), step=2)
    assert store.set_feedback("p7", 2, 42).feedback_step == 42
    assert store.get("p7").feedback_label == 2
    clock.now += 6                                           # the first five are now older than 10 s
    assert store.get("p0") is None and store.set_feedback("p1", 0, 1) is None
    assert len(store) == 5 and store.get("p9").step == 2


def test_a_reused_slot_does_not_inherit_the_previous_feedback():
    store = PredictionStore(capacity=1024, ttl=3600, clock=Clock())
    store.add_many(*_batch(0, 1024), step=0)
    store.set_feedback("p3", 1, 5)
    store.add_many(*_batch(1024, 10), step=1)               # p0..p9 are evicted, their slots reused
    assert store.get("p3") is None and store.get("p1027").feedback_label is None


def test_zero_capacity_stores_nothing():
    store = PredictionStore(capacity=0, ttl=3600)
    store.add_many(*_batch(0, 3), step=0)
    assert len(store) == 0 and store.get("p0") is None
