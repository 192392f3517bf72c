"""Oja / SoftHebb rule: ``Δw_j = a·(x̂ − u_j·w_j)`` with ``u_j = w_j·x̂`` and ``a = η_j·y_j``.

The decay term ``u_j·w_j`` keeps ‖w_j‖ near 1 without an explicit normalisation; with soft-WTA
``y_j`` this is the SoftHebb update. Local: the neuron's own input, output and weights only.
Weights are stored factored as ``w_j = s_j·v_j`` (see :mod:`model.rules.scaled`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from model.rules.scaled import rescale


@nb.njit(cache=True, nogil=True)
def oja_update(V, s, q, j, idx, val, nnz, a):
    """In place on neuron ``j``; ``(idx, val)`` is the sparse unit-norm input patch."""
    dot = np.float32(0.0)
    for t in range(nnz):
        dot += V[idx[t], j] * val[t]
    u = s[j] * dot
    shrunk = s[j] * (np.float32(1.0) - a * u)
    g = a / shrunk
    acc = q[j]
    for t in range(nnz):
        old = V[idx[t], j]
        new = old + g * val[t]
        acc += np.float64(new) * new - np.float64(old) * old
        V[idx[t], j] = new
    q[j] = acc
    s[j] = shrunk
    rescale(V, s, q, j)


def oja_update_reference(w: np.ndarray, x_unit: np.ndarray, a: float) -> np.ndarray:
    """Plain-numpy twin on a dense weight vector; returns the new vector.

    >>> import numpy as np
    >>> oja_update_reference(np.array([1.0, 0.0], np.float32), np.array([1.0, 0.0], np.float32), 0.5).tolist()
    [1.0, 0.0]
    """
    a = np.float32(a)
    u = np.float32(np.dot(w, x_unit))
    return (w * (np.float32(1.0) - a * u) + a * x_unit).astype(np.float32)
