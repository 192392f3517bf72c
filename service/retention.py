"""Bounded in-memory records the manager keeps per model: stored predictions (for delayed feedback)
and the window of seen sample ids (for idempotent retries)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np


@dataclass
class StoredPrediction:
    prediction_id: str
    pixels: np.ndarray            # uint8[size], the input, kept so feedback can learn it
    label: int
    probabilities: np.ndarray     # float32[classes]
    step: int                     # samples_seen of the snapshot that made the prediction
    created_at: float = field(default_factory=time.time)
    feedback_label: int | None = None
    feedback_step: int | None = None


class PredictionStore:
    """Newest ``capacity`` predictions, each kept at most ``ttl`` seconds. Used from the event loop only."""

    def __init__(self, capacity: int, ttl: float, clock=time.time):
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._items: OrderedDict[str, StoredPrediction] = OrderedDict()

    def add(self, item: StoredPrediction) -> None:
        if self.capacity <= 0:
            return
        self._items[item.prediction_id] = item
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        self._expire()

    def get(self, prediction_id: str) -> StoredPrediction | None:
        self._expire()
        return self._items.get(prediction_id)

    def _expire(self) -> None:
        horizon = self._clock() - self.ttl
        while self._items:
            oldest = next(iter(self._items.values()))
            if oldest.created_at >= horizon:
                break
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class SeenIds:
    """The newest ``window`` sample ids, oldest first. Mutated only by the model's learner thread;
    the event loop only tests membership (atomic under the GIL)."""

    def __init__(self, window: int, ids: Iterable[str] = ()):
        self.window = window
        self._ids: dict[str, None] = {}
        self.update(ids)

    def update(self, ids: Iterable[str | None]) -> None:
        if self.window <= 0:
            return
        for sample_id in ids:
            if sample_id is not None:
                self._ids.pop(sample_id, None)
                self._ids[sample_id] = None
        while len(self._ids) > self.window:
            del self._ids[next(iter(self._ids))]

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def to_list(self) -> list[str]:
        return list(self._ids)
