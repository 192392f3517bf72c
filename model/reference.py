"""Plain-numpy reference implementations of the numba kernels, written for clarity, not speed.

Tests run both on the same inputs and compare. The semantics are those documented in
:mod:`model.kernels`: dense effective weights ``W[n_in, K]`` here instead of the factored storage.
"""

from __future__ import annotations

import numpy as np

from model.rules.instar import instar_update_reference
from model.rules.oja import oja_update_reference


def patches(X: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """All patches of a ``(H, W, C)`` map as ``float32[OH, OW, kernel·kernel·C]`` in (dy, dx, c) order."""
    h, w, _ = X.shape
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out = np.empty((oh, ow, kernel * kernel * X.shape[2]), np.float32)
    for oy in range(oh):
        for ox in range(ow):
            out[oy, ox] = X[oy * stride:oy * stride + kernel, ox * stride:ox * stride + kernel, :].reshape(-1)
    return out


def compete(score: np.ndarray, mode: str, k: int, temperature: float) -> np.ndarray:
    """Competition output ``y`` over channels (ties go to the lowest index)."""
    y = np.zeros_like(score)
    if mode == "soft":
        e = np.exp((score - score.max()) / temperature)
        return (e / e.sum()).astype(np.float32)
    n_win = 1 if mode == "hard" else min(k, len(score))
    order = np.argsort(-score, kind="stable")
    y[order[:n_win]] = 1.0
    return y


def plasticity_left(wins: float, consolidation: float) -> float:
    """Factor on a unit's rate and threshold steps: 1 without consolidation, else falling linearly
    from 1 to 0 (consolidated: frozen) as its win count reaches ``consolidation``."""
    return 1.0 if consolidation <= 0 else max(0.0, 1.0 - wins / consolidation)


def layer_step(X, W, theta, wins, last_win, sample_index, cfg, emission_shape, learn=True):
    """One sample through one layer; returns (emission, features) and updates the state in place.

    ``cfg`` is a :class:`model.config.LayerConfig`.
    """
    comp, plast = cfg.competition, cfg.plasticity
    P = patches(X, cfg.kernel, cfg.stride)
    oh, ow, _ = P.shape
    n_ch = W.shape[1]
    grid = cfg.readout_grid
    emission = np.zeros(emission_shape, np.float32)
    best_score = np.full(emission_shape[:2], -np.inf, np.float32)
    feats = np.zeros((grid, grid, n_ch), np.float32)
    learned = []
    for oy in range(oh):
        for ox in range(ow):
            x = P[oy, ox]
            norm = np.float32(np.sqrt(np.sum(x * x)))
            if norm < cfg.min_input_norm or not np.any(x):
                continue
            z = x @ W
            y = compete(z / norm - theta, comp.mode, comp.k, comp.temperature)
            if grid > 0:
                feats[oy * grid // oh, ox * grid // ow] += np.maximum(z - z.mean(), 0.0)
            qy, qx = oy // cfg.pool, ox // cfg.pool
            if qy < emission_shape[0] and qx < emission_shape[1]:
                if cfg.pool_mode == "max":
                    emission[qy, qx] = np.maximum(emission[qy, qx], y)
                else:  # the cell's best-scoring winner only (earliest position on ties)
                    score = z / norm - theta
                    for j in np.flatnonzero(y):
                        if score[j] > best_score[qy, qx]:
                            best_score[qy, qx] = score[j]
                            emission[qy, qx] = 0.0
                            emission[qy, qx, j] = y[j]
            learned.append((x / norm, y))
    if learn:
        for x_unit, y in learned:
            update = instar_update_reference if cfg.rule == "instar" else oja_update_reference
            for j in np.flatnonzero(y):
                left = plasticity_left(wins[j], plast.consolidation)
                if left > 0:
                    rate = max(plast.lr_min, plast.lr0 / (1.0 + wins[j] / plast.lr_halflife)) * left
                    W[:, j] = update(W[:, j], x_unit, np.float32(rate) * y[j])
                    theta[j] += np.float32(plast.homeostasis * left) * y[j]
                wins[j] += y[j]
                if y[j] >= 0.5:
                    last_win[j] = sample_index
            last_win[int(np.argmax(y))] = sample_index
        if plast.homeostasis > 0 and learned:  # h/K per active position, applied once per sample
            total = np.float32(plast.homeostasis / n_ch) * np.float32(len(learned))
            for j in range(n_ch):
                theta[j] -= np.float32(total * plasticity_left(wins[j], plast.consolidation))
    return emission, feats


def readout_scores(F: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (F.astype(np.float64) @ W.astype(np.float64)).astype(np.float32)


def delta_rule(F: np.ndarray, labels: np.ndarray, W: np.ndarray, lr: float) -> np.ndarray:
    """Normalised LMS per sample (predict first); updates ``W`` in place, returns the scores."""
    scores = np.zeros((len(F), W.shape[1]), np.float32)
    for n, (f, label) in enumerate(zip(F, labels)):
        scores[n] = f @ W
        if label < 0:
            continue
        target = np.zeros(W.shape[1], np.float32)
        target[label] = 1.0
        W += np.outer(f, (target - scores[n]) * (lr / (1e-6 + f @ f)))
    return scores


def ridge_solution(F: np.ndarray, labels: np.ndarray, classes: int, ridge: float, forgetting: float = 1.0) -> np.ndarray:
    """Exact ridge weights from per-sample statistics (what the streaming readout approximates)."""
    A = np.zeros((F.shape[1], F.shape[1]))
    B = np.zeros((F.shape[1], classes))
    for f, label in zip(F.astype(np.float64), labels):
        A = forgetting * A + np.outer(f, f)
        B *= forgetting
        B[:, label] += f
    lam = ridge * max(np.trace(A) / len(A), 1e-12)
    return np.linalg.solve(A + lam * np.eye(len(A)), B)
