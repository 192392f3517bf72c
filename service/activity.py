"""What a model did lately, kept for the dashboard: bounded windows of its recent inputs, of its
recent prequential (label, prediction) pairs, a learning curve, and its ingest rate.

Written and read on the event loop only (the manager records each learned request after it was
learned), so it needs no lock; every buffer is bounded whatever the traffic.
"""

from __future__ import annotations

import collections
import time

import numpy as np


class RecentActivity:
    """Recent activity of one model.

    * ``recent_inputs()``: the last ``inputs_kept`` inputs learned (what the dashboard's picture of
      the top-layer units is computed from);
    * ``confusion()`` / ``rolling_accuracy()``: over the last ``pairs_kept`` labeled samples, the
      prediction made *before* each was learned (prequential);
    * ``curve()``: ``(step, rolling accuracy)`` points, at most ``curve_points``: one point every
      ``spacing`` samples; when full, every other point is dropped and the spacing doubles, so the
      whole history stays visible at a coarser resolution;
    * ``samples_per_second()``: samples learned over the last ``rate_window`` seconds.
    """

    def __init__(self, classes: int, input_size: int, *, inputs_kept: int = 256, pairs_kept: int = 1000,
                 curve_points: int = 400, curve_spacing: int = 100, rate_window: float = 2.0):
        self.classes = classes
        self._inputs = np.zeros((inputs_kept, input_size), np.uint8)
        self._inputs_total = 0
        self._labels = np.zeros(pairs_kept, np.int64)
        self._predictions = np.zeros(pairs_kept, np.int64)
        self._pairs_total = 0
        self._curve: list[tuple[int, float]] = []
        self._curve_points = curve_points
        self._spacing = curve_spacing
        self._next_point = curve_spacing
        self._rate_window = rate_window
        self._arrivals: collections.deque[tuple[float, int]] = collections.deque()

    # ----------------------------------------------------------------- writing
    def record(self, pixels: np.ndarray, labels: np.ndarray, predictions: np.ndarray, step: int,
               now: float | None = None) -> None:
        """One learned batch: ``pixels`` uint8[n, size], ``labels`` int[n] (-1 unlabeled), the
        prequential ``predictions`` int[n], and the model's ``step`` after it."""
        n = len(pixels)
        if n == 0:
            return
        _push(self._inputs, self._inputs_total, pixels)
        self._inputs_total += n
        labeled = labels >= 0
        if labeled.any():
            _push(self._labels, self._pairs_total, labels[labeled])
            _push(self._predictions, self._pairs_total, predictions[labeled])
            self._pairs_total += int(labeled.sum())
        self._arrivals.append((time.monotonic() if now is None else now, n))
        self._extend_curve(step)

    def _extend_curve(self, step: int) -> None:
        if step < self._next_point or (self._curve and step <= self._curve[-1][0]):
            return
        accuracy = self.rolling_accuracy()
        if accuracy is None:
            return
        self._curve.append((step, accuracy))
        self._next_point = step + self._spacing
        if len(self._curve) >= self._curve_points:
            # every other point, keeping the first (the start of learning) and the newest
            self._curve = self._curve[::2] + ([self._curve[-1]] if len(self._curve) % 2 == 0 else [])
            self._spacing *= 2
            self._next_point = self._curve[-1][0] + self._spacing

    # ----------------------------------------------------------------- reading
    def recent_inputs(self) -> np.ndarray:
        """The last inputs learned, oldest first (a copy)."""
        return _ordered(self._inputs, self._inputs_total)

    def recent_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, predictions) of the last labeled samples, oldest first (copies)."""
        return _ordered(self._labels, self._pairs_total), _ordered(self._predictions, self._pairs_total)

    @property
    def pairs_kept(self) -> int:
        return len(self._labels)

    def confusion(self) -> np.ndarray:
        """``int64[classes, classes]``: rows are true labels, columns the predictions."""
        labels, predictions = self.recent_pairs()
        flat = np.bincount(labels * self.classes + predictions, minlength=self.classes * self.classes)
        return flat.reshape(self.classes, self.classes)

    def rolling_accuracy(self) -> float | None:
        labels, predictions = self.recent_pairs()
        return float((labels == predictions).mean()) if len(labels) else None

    def curve(self) -> list[tuple[int, float]]:
        return list(self._curve)

    def samples_per_second(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._arrivals and self._arrivals[0][0] < now - self._rate_window:
            self._arrivals.popleft()
        return sum(n for _, n in self._arrivals) / self._rate_window


def _push(ring: np.ndarray, total: int, rows: np.ndarray) -> None:
    """Write ``rows`` into the ring buffer ``ring`` that already received ``total`` rows."""
    cap = len(ring)
    skipped = max(len(rows) - cap, 0)          # older rows of this batch that would be overwritten anyway
    rows = rows[skipped:]
    start = (total + skipped) % cap
    first = min(cap - start, len(rows))
    ring[start:start + first] = rows[:first]
    ring[:len(rows) - first] = rows[first:]


def _ordered(ring: np.ndarray, total: int) -> np.ndarray:
    cap = len(ring)
    if total <= cap:
        return ring[:total].copy()
    start = total % cap
    return np.concatenate([ring[start:], ring[:start]])
