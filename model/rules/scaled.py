"""Factored weight storage shared by the rules: ``w_j = s_j·v_j`` with ``q_j = ‖v_j‖²``.

A multiplicative shrink of a whole weight vector then costs O(1) (it only changes ``s_j``), so an
update touches only the inputs that are non-zero. When ``s_j`` drifts far from 1 the vector is
folded back (``v_j ← s_j·v_j``, ``s_j ← 1``) to keep float32 precision.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_LOW, _HIGH = np.float32(1e-3), np.float32(1e3)


@nb.njit(cache=True, nogil=True)
def rescale(V, s, q, j):
    if _LOW <= s[j] <= _HIGH:
        return
    acc = 0.0
    for i in range(V.shape[0]):
        V[i, j] *= s[j]
        acc += np.float64(V[i, j]) * V[i, j]
    s[j] = np.float32(1.0)
    q[j] = acc


def effective_weights(V: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The dense weights ``w_j = s_j·v_j`` as ``float32[n_in, K]``."""
    return (V * s[None, :]).astype(np.float32)
