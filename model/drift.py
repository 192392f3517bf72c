"""Concept-drift detection on the prequential error stream, and a readout guarded by it.

:class:`DriftDetector` is the Page-Hinkley test (Page, 1954) on the stream of prediction errors
(1 = wrong, 0 = right): it accumulates ``m = Σ (error − mean error so far − tolerance)`` and signals
a drift when ``m`` rises more than ``threshold`` above its lowest value. On a stationary stream the
increments average ``−tolerance``, so ``m`` keeps falling and nothing fires; after a change that
raises the error rate by ``Δ > tolerance`` it fires after about ``threshold / (Δ − tolerance)``
samples. (DDM, which compares the cumulative error rate with its running minimum, was tried first
and raised false alarms on long stationary streams.) It is plain deterministic arithmetic and its
whole state is one small float64 array, so it round-trips bit for bit with the network's state.

>>> import numpy as np
>>> detector = DriftDetector(tolerance=0.05, threshold=40.0)
>>> rng = np.random.default_rng(0)
>>> stable = rng.random(20_000) < 0.05        # 5 % errors: a stationary learner
>>> detector.update_many(stable)              # index of the first drift, -1 if none
-1
>>> changed = rng.random(500) < 0.60          # the concept changed: 60 % errors
>>> 0 <= detector.update_many(changed) < 120
True
>>> detector.drifts, detector.samples         # the detector restarted itself after the drift
(1, 0)

:func:`guarded_learn` feeds a readout's prequential errors to a detector, sample by sample, and
resets the readout at the sample where a drift is signalled, so the samples after it are predicted
and learned by the fresh readout. It keeps the readout's exact per-sample semantics: chunking the
stream differently never changes the result.
"""

from __future__ import annotations

import numpy as np

# layout of DriftDetector.state (float64: counts stay exact up to 2**53)
_SAMPLES, _ERRORS, _CUMULATIVE, _MINIMUM, _DRIFTS = range(5)


class DriftDetector:
    """Page-Hinkley drift detector over a stream of prediction errors (``True`` = wrong).

    ``tolerance``: rise of the error rate that is tolerated without a drift. ``threshold``: how far
    the cumulative excess must climb above its minimum to signal one (higher: fewer false alarms,
    later detection). ``min_samples``: outcomes needed after a restart before a drift can fire.
    """

    STATE_SIZE = 5

    def __init__(self, tolerance: float = 0.05, threshold: float = 40.0, min_samples: int = 30):
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples}")
        self.tolerance = float(tolerance)
        self.threshold = float(threshold)
        self.min_samples = int(min_samples)
        self.state = np.zeros(self.STATE_SIZE, np.float64)

    def _restart(self) -> None:
        self.state[[_SAMPLES, _ERRORS, _CUMULATIVE, _MINIMUM]] = 0.0

    @property
    def samples(self) -> int:
        """Outcomes observed since the last drift (or the start)."""
        return int(self.state[_SAMPLES])

    @property
    def drifts(self) -> int:
        """Drifts signalled so far."""
        return int(self.state[_DRIFTS])

    def update(self, error: bool) -> bool:
        """Observe one prediction outcome; return True (and restart) if a drift is signalled."""
        state = self.state
        x = 1.0 if error else 0.0
        state[_SAMPLES] += 1.0
        state[_ERRORS] += x
        state[_CUMULATIVE] += x - state[_ERRORS] / state[_SAMPLES] - self.tolerance
        state[_MINIMUM] = min(state[_MINIMUM], state[_CUMULATIVE])
        if state[_SAMPLES] >= self.min_samples and state[_CUMULATIVE] - state[_MINIMUM] > self.threshold:
            state[_DRIFTS] += 1.0
            self._restart()
            return True
        return False

    def update_many(self, errors: np.ndarray) -> int:
        """Observe outcomes in order, stopping at the first drift: returns its index, or -1.

        Outcomes after a drift are not consumed, so the caller can act on the drift first and feed
        the rest again.
        """
        for i, error in enumerate(np.asarray(errors, dtype=bool)):
            if self.update(bool(error)):
                return i
        return -1


def guarded_learn(readout, detector: DriftDetector, F: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``readout.learn_many(F, labels)`` with ``detector`` watching its prequential errors.

    The readout's weights only change at its solve points, so for each run of samples up to the
    next solve the prequential scores are computed first (without learning), the labeled errors go
    to the detector, and the readout then learns only up to and including the sample where a drift
    is signalled; there it is reset (its statistics and weights are forgotten and its solve
    schedule restarts) and the remaining samples are processed by the fresh readout.
    """
    scores = np.zeros((F.shape[0], readout.classes), np.float32)
    start = 0
    while start < F.shape[0]:
        # the run during which the readout's weights stay fixed: up to its next solve (a readout
        # without a solve schedule, like the delta rule, changes its weights with every label)
        todo = readout.next_solve() - readout.labels_seen if hasattr(readout, "next_solve") else 1
        stop = start
        while stop < F.shape[0] and todo > 0:
            todo -= int(labels[stop] >= 0)
            stop += 1
        run_scores = readout.scores(F[start:stop])
        run_labels = labels[start:stop]
        labeled = np.flatnonzero(run_labels >= 0)
        errors = run_scores[labeled].argmax(axis=1) != run_labels[labeled]
        fired = detector.update_many(errors)
        if fired >= 0:
            stop = start + int(labeled[fired]) + 1
        scores[start:stop] = readout.learn_many(F[start:stop], labels[start:stop])
        if fired >= 0:
            readout.reset()
        start = stop
    return scores


class GuardedReadout:
    """A readout whose ``learn_many`` runs under a drift detector (see :func:`guarded_learn`).

    Everything else (weights, scores, state arrays, counters) is the wrapped readout's: reads and
    writes of those attributes go straight through, so the network treats it as the readout itself.
    """

    def __init__(self, readout, detector: DriftDetector):
        object.__setattr__(self, "inner", readout)
        object.__setattr__(self, "detector", detector)

    def learn_many(self, F: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return guarded_learn(self.inner, self.detector, F, labels)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.inner, name, value)
