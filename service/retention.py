"""Bounded in-memory records the manager keeps per model: stored predictions (for delayed feedback)
and the window of seen sample ids (for idempotent retries)."""

from __future__ import annotations

import time
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
    """Newest ``capacity`` predictions, each kept at most ``ttl`` seconds. Used from the event loop only.

    Stored column-wise in numpy ring buffers (grown on demand up to ``capacity``), not as one object
    per prediction: a hundred thousand small objects made every full garbage collection walk them,
    a pause of ~0.1 s about once a second under load.

    >>> store = PredictionStore(capacity=2, ttl=60)
    >>> store.add_many(["a", "b", "c"], np.zeros((3, 4), np.uint8), np.array([1, 2, 3]), np.zeros((3, 2)), step=7)
    >>> store.get("a") is None, store.get("c").label, len(store)
    (True, 3, 2)
    >>> store.set_feedback("c", 5, 9).feedback_label
    5
    """

    _INITIAL_ROWS = 1024
    _NO_FEEDBACK = -1        # the feedback columns of a prediction that has none
    # the ring buffers: attribute -> (dtype, value of an empty row, row width: None for one value,
    # else which of _allocate's sizes)
    _COLUMNS = {
        "_pixels": (np.uint8, 0, "size"),
        "_probas": (np.float32, 0, "classes"),
        "_labels": (np.int64, 0, None),
        "_steps": (np.int64, 0, None),
        "_created": (np.float64, 0, None),
        "_feedback_label": (np.int64, _NO_FEEDBACK, None),
        "_feedback_step": (np.int64, _NO_FEEDBACK, None),
    }

    def __init__(self, capacity: int, ttl: float, clock=time.time):
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._added = 0          # predictions ever added; the newest is in slot (_added - 1) % rows
        for name in self._COLUMNS:
            setattr(self, name, None)

    def _allocate(self, rows: int, size: int, classes: int) -> None:
        widths = {"size": size, "classes": classes}
        for name, (dtype, empty, width) in self._COLUMNS.items():
            shape = rows if width is None else (rows, widths[width])
            # np.zeros gets untouched pages from the OS: no write pass over (at the default retention)
            # a 78 MB pixel buffer on the event loop
            column = np.zeros(shape, dtype) if empty == 0 else np.full(shape, empty, dtype)
            previous = getattr(self, name)
            if previous is not None:   # growing happens before the ring wraps: slots keep their index
                column[:len(previous)] = previous
            setattr(self, name, column)
        self._ids.extend([None] * (rows - len(self._ids)))

    def add_many(self, ids: list[str], pixels: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                 step: int) -> None:
        if self.capacity <= 0:
            return
        now = self._clock()
        for i, prediction_id in enumerate(ids):
            rows = 0 if self._pixels is None else len(self._pixels)
            if self._added >= rows and rows < self.capacity:
                self._allocate(min(self.capacity, max(self._INITIAL_ROWS, 2 * rows)), pixels.shape[1],
                               probabilities.shape[1])
                rows = len(self._pixels)
            slot = self._added % rows
            evicted = self._ids[slot]
            if evicted is not None:
                del self._slot_of[evicted]
            self._ids[slot] = prediction_id
            self._slot_of[prediction_id] = slot
            self._pixels[slot] = pixels[i]
            self._probas[slot] = probabilities[i]
            self._labels[slot] = labels[i]
            self._steps[slot] = step
            self._created[slot] = now
            self._feedback_label[slot] = self._feedback_step[slot] = self._NO_FEEDBACK
            self._added += 1

    def _live_slot(self, prediction_id: str) -> int | None:
        slot = self._slot_of.get(prediction_id)
        if slot is not None and self._created[slot] < self._clock() - self.ttl:
            return None   # expired (its slot is reused or dropped later)
        return slot

    def get(self, prediction_id: str) -> StoredPrediction | None:
        slot = self._live_slot(prediction_id)
        if slot is None:
            return None
        feedback = int(self._feedback_label[slot])
        return StoredPrediction(prediction_id, self._pixels[slot].copy(), int(self._labels[slot]),
                                self._probas[slot].copy(), int(self._steps[slot]), float(self._created[slot]),
                                None if feedback == self._NO_FEEDBACK else feedback,
                                None if feedback == self._NO_FEEDBACK else int(self._feedback_step[slot]))

    def set_feedback(self, prediction_id: str, label: int, step: int) -> StoredPrediction | None:
        slot = self._live_slot(prediction_id)
        if slot is None:
            return None
        self._feedback_label[slot] = label
        self._feedback_step[slot] = step
        return self.get(prediction_id)

    def __len__(self) -> int:
        if self._pixels is None:
            return 0
        horizon = self._clock() - self.ttl
        stored = min(self._added, len(self._pixels))
        return int((self._created[:stored] >= horizon).sum())


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
