"""Instar rule with weight normalisation (online spherical k-means).

The winning neuron ``j`` moves its weight vector toward the (unit-norm) input patch it won:
``w_j ← (w_j + a·(x̂ − w_j)) / ‖·‖`` with ``a = η_j·y_j``. It uses only the neuron's own input
patch, its own output ``y_j`` and its own learning rate: strictly local.

Weights are stored factored as ``w_j = s_j·v_j`` with ``q_j = ‖v_j‖²`` so that an update costs
O(non-zero inputs) instead of O(all inputs): the shrink ``(1 − a)`` and the renormalisation only
change the scale ``s_j``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from model.rules.scaled import rescale


@nb.njit(cache=True, nogil=True)
def instar_update(V, s, q, j, idx, val, nnz, a):
    """In place on neuron ``j``; ``(idx, val)`` is the sparse unit-norm input patch."""
    shrunk = s[j] * (np.float32(1.0) - a)
    g = a / shrunk
    acc = q[j]
    for t in range(nnz):
        old = V[idx[t], j]
        new = old + g * val[t]
        acc += np.float64(new) * new - np.float64(old) * old
        V[idx[t], j] = new
    q[j] = acc
    s[j] = np.float32(1.0 / np.sqrt(acc)) if acc > 0.0 else shrunk
    rescale(V, s, q, j)


def instar_update_reference(w: np.ndarray, x_unit: np.ndarray, a: float) -> np.ndarray:
    """Plain-numpy twin on a dense weight vector; returns the new vector.

    >>> import numpy as np
    >>> w = instar_update_reference(np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32), 0.5)
    >>> [round(float(v), 4) for v in w]
    [0.7071, 0.7071]
    """
    a = np.float32(a)
    new = w * (np.float32(1.0) - a) + a * x_unit
    norm = np.sqrt(np.sum(new * new, dtype=np.float32))
    return (new / norm).astype(np.float32) if norm > 0 else new.astype(np.float32)
