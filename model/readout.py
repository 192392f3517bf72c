"""Linear readouts trained online from (features, label) pairs only; features are never trained
through them.

Both readouts process a chunk of samples in order: each sample is scored with the weights as they
are at that moment (the prequential prediction), then learned. Results do not depend on how the
stream is chunked.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from model import kernels
from model.blas import cholesky_solve_lower, symm_lower, syrk_lower
from model.config import ReadoutConfig

_BLAS = ThreadpoolController()  # sees the BLAS libraries numpy and scipy loaded above
# the BLAS thread limit is process-wide: one readout at a time sets and restores it
_BLAS_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def fixed_blas_threads(threads: int):
    """Every BLAS/LAPACK call that changes the readout's state runs on a fixed number of threads:
    OpenBLAS splits work (and so rounds) differently with another thread count, and a count that
    depends on what else runs, or on the machine's cores, would break bit-exact replay. One thread
    for the Gram update, which is pipelined with the layers' work; ``_SOLVE_THREADS`` for the solves,
    which the pipeline waits for. Also keeps idle OpenBLAS workers from spinning on the cores the
    layer stages use."""
    with _BLAS_LIMIT_LOCK, _BLAS.limit(limits=threads, user_api="blas"):
        yield


# the same on every machine (a constant, not the core count): results depend on it
_SOLVE_THREADS = 2

# statistics are folded in every _ACCUMULATE labels with one GEMM; the boundaries depend only on
# the label count, so chunking cannot change the arithmetic
_ACCUMULATE = 256


class LinearReadout:
    """What both readouts share: class scores are ``F @ weights``."""

    # all that prediction reads; the rest of STATE_ARRAYS only serves learning
    SERVING_ARRAYS = ("weights",)

    def __init__(self, config: ReadoutConfig, n_features: int, classes: int):
        self.config = config
        self.classes = classes
        self.weights = np.zeros((n_features, classes), np.float32)

    def scores(self, F: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Class scores ``F @ weights`` by :func:`model.kernels.readout_scores`, the kernel that
        also scores prequentially while streaming least squares learns, so its predictions equal
        the ones learning would have made (the delta rule scores in its own update kernel).
        ``weights``: other (e.g. a snapshot's) weights ``float32[d, classes]``; default the current
        ones."""
        out = np.empty((F.shape[0], self.classes), np.float32)
        kernels.readout_scores(F, np.ascontiguousarray(self.weights if weights is None else weights), out)
        return out


class StreamingLeastSquares(LinearReadout):
    """Ridge regression onto one-hot targets from running sufficient statistics.

    ``A = Σ λ^age·f·fᵀ`` (lower triangle stored) and ``B = Σ λ^age·f·tᵀ`` grow with every label (``λ`` the forgetting
    factor); the weights are re-solved after ``first_solve·4^i`` labels and then every
    ``solve_every`` labels. Without forgetting nothing learned is ever lost.
    """

    # the Gram matrix is saved as its packed lower triangle: the only part ever written
    STATE_ARRAYS = ("weights", "gram_lower", "cross", "buffer", "buffer_labels")

    def __init__(self, config: ReadoutConfig, n_features: int, classes: int):
        super().__init__(config, n_features, classes)
        self.gram = np.zeros((n_features, n_features), np.float32)
        self.cross = np.zeros((n_features, classes), np.float64)
        self.buffer = np.zeros((_ACCUMULATE, n_features), np.float32)
        self.buffer_labels = np.full(_ACCUMULATE, -1, np.int64)
        self.labels_seen = 0
        self.buffered = 0
        self.solves = 0

    @property
    def gram_lower(self) -> np.ndarray:
        """The lower triangle of the Gram matrix, row by row, as one float32 vector."""
        return np.concatenate([self.gram[i, :i + 1] for i in range(self.gram.shape[0])])

    @gram_lower.setter
    def gram_lower(self, packed: np.ndarray) -> None:
        d = self.gram.shape[0]
        if packed.shape != (d * (d + 1) // 2,):
            raise ValueError(f"packed Gram triangle has shape {packed.shape}, expected ({d * (d + 1) // 2},)")
        gram = np.zeros((d, d), np.float32)
        start = 0
        for i in range(d):
            gram[i, :i + 1] = packed[start:start + i + 1]
            start += i + 1
        self.gram = gram

    def next_solve(self) -> int:
        """Label count at which the weights are solved next: ``first_solve·4^i`` while that is
        below ``solve_every``, then every ``solve_every`` labels (a solve costs O(d³))."""
        first, every = self.config.first_solve, self.config.solve_every
        n = self.labels_seen
        point = first
        while point <= n and point < every:
            point *= 4
        if point > n and point < every:
            return point
        return (n // every + 1) * every

    def learn_many(self, F: np.ndarray, labels: np.ndarray) -> np.ndarray:
        scores = np.zeros((F.shape[0], self.classes), np.float32)
        start = 0
        while start < F.shape[0]:
            # the longest run of samples during which the weights stay fixed
            todo = self.next_solve() - self.labels_seen
            stop = start
            while stop < F.shape[0] and todo > 0:
                if labels[stop] >= 0:
                    todo -= 1
                stop += 1
            kernels.readout_scores(F[start:stop], self.weights, scores[start:stop])  # always C-contiguous
            for i in range(start, stop):
                if labels[i] >= 0:
                    self._add(F[i], labels[i])
            if todo == 0:
                self._fold()
                self._solve()
            start = stop
        return scores

    def _add(self, f: np.ndarray, label: int) -> None:
        self.buffer[self.buffered] = f
        self.buffer_labels[self.buffered] = label
        self.buffered += 1
        self.labels_seen += 1
        if self.buffered == _ACCUMULATE:
            self._fold()

    def _fold(self) -> None:
        """Fold the buffered labels into the statistics (exact per-sample forgetting)."""
        n = self.buffered
        if n == 0:
            return
        F = self.buffer[:n]
        targets = np.zeros((n, self.classes), np.float32)
        targets[np.arange(n), self.buffer_labels[:n]] = 1.0
        lam = self.config.forgetting
        decay = 1.0
        if lam < 1.0:
            ages = np.arange(n - 1, -1, -1, dtype=np.float64)
            scale = np.sqrt(lam ** ages).astype(np.float32)[:, None]
            F = F * scale
            targets *= scale
            decay = lam ** n
            self.cross *= decay
        # A ← decay·A + FᵀF in place, lower triangle only (half the work of a full product; the
        # Cholesky solve reads only that triangle)
        with fixed_blas_threads(1):
            syrk_lower(np.ascontiguousarray(F), self.gram, np.float32(decay))  # without the GIL
            cross = F.T @ targets
        self.cross += cross
        self.buffered = 0
        self.buffer_labels[:] = -1

    def _solve(self) -> None:
        """Ridge weights for ``(A + ridge·mean(diag A)·I)·W = B``: exact by Cholesky when the label
        count is a multiple of ``exact_every`` (O(d³)), otherwise refined from the current weights
        by a fixed number of Jacobi-preconditioned conjugate-gradient steps (O(d²) each). Both
        depend only on the state, so a restored model continues identically."""
        diag = np.diag(self.gram).astype(np.float64)
        ridge = self.config.ridge * max(float(diag.mean()), 1e-12)
        with fixed_blas_threads(_SOLVE_THREADS):
            if self.labels_seen % self.config.exact_every == 0:
                system = self.gram.astype(np.float64)
                system[np.diag_indices_from(system)] += ridge
                solution_t = np.ascontiguousarray(self.cross.T)
                if cholesky_solve_lower(system, solution_t) != 0:  # without the GIL
                    raise np.linalg.LinAlgError("readout system is not positive definite")
                weights = solution_t.T
            else:
                weights = conjugate_gradients(self.gram, ridge, self.cross, self.weights.astype(np.float64),
                                              1.0 / (diag + ridge), self.config.cg_iterations)
        # C order, like every state array: LAPACK answers in Fortran order, and numba compiles a
        # separate (differently rounded) kernel per memory layout, so a restored state would
        # otherwise score differently from the run that saved it
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.solves += 1

    def reset(self) -> None:
        """Forget everything (used when a drift detector fires): statistics, weights, and the solve
        schedule, which restarts at ``first_solve`` so the fresh readout is solved early and often."""
        self.gram[:] = 0.0
        self.cross[:] = 0.0
        self.weights[:] = 0.0
        self.buffered = 0
        self.buffer_labels[:] = -1
        self.labels_seen = 0

    def counters(self) -> dict:
        return {"labels_seen": self.labels_seen, "buffered": self.buffered, "solves": self.solves}

    def load_counters(self, c: dict) -> None:
        self.labels_seen, self.buffered, self.solves = int(c["labels_seen"]), int(c["buffered"]), int(c["solves"])


def conjugate_gradients(gram_lower: np.ndarray, ridge: float, B: np.ndarray, X: np.ndarray, precond: np.ndarray,
                        iterations: int) -> np.ndarray:
    """Preconditioned CG for ``(A + ridge·I)·X = B``, one independent run per column of ``B``;
    ``A`` is given by its lower triangle (C order) and applied with a symmetric BLAS product."""
    def apply(P: np.ndarray) -> np.ndarray:
        PT = np.ascontiguousarray(P.T, dtype=np.float32)
        APT = np.empty_like(PT)
        symm_lower(gram_lower, PT, APT)  # without the GIL
        return APT.T.astype(np.float64) + ridge * P

    R = B - apply(X)
    Z = R * precond[:, None]
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    for _ in range(iterations):
        AP = apply(P)
        curvature = np.einsum("ij,ij->j", P, AP)
        alpha = np.divide(rz, curvature, out=np.zeros_like(rz), where=curvature > 0)
        X = X + alpha * P
        R = R - alpha * AP
        Z = R * precond[:, None]
        rz_new = np.einsum("ij,ij->j", R, Z)
        beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
        P = Z + beta * P
        rz = rz_new
    return X


class DeltaRule(LinearReadout):
    """Normalised LMS, one step per labeled sample: ``W += lr·(t − s)·fᵀ / ‖f‖²``."""

    STATE_ARRAYS = ("weights",)

    def __init__(self, config: ReadoutConfig, n_features: int, classes: int):
        super().__init__(config, n_features, classes)
        self.labels_seen = 0

    def learn_many(self, F: np.ndarray, labels: np.ndarray) -> np.ndarray:
        scores = np.zeros((F.shape[0], self.classes), np.float32)
        kernels.delta_rule_chunk(F, labels, self.weights, np.float32(self.config.delta_lr), scores)
        self.labels_seen += int((labels >= 0).sum())
        return scores

    def reset(self) -> None:
        self.weights[:] = 0.0

    def counters(self) -> dict:
        return {"labels_seen": self.labels_seen}

    def load_counters(self, c: dict) -> None:
        self.labels_seen = int(c["labels_seen"])


def make_readout(config: ReadoutConfig, n_features: int, classes: int):
    cls = StreamingLeastSquares if config.rule == "rls" else DeltaRule
    return cls(config, n_features, classes)
