"""Each learning rule's numba update against its plain-numpy reference."""

import numpy as np
import pytest

from model.rules.instar import instar_update, instar_update_reference
from model.rules.oja import oja_update, oja_update_reference
from model.rules.scaled import effective_weights


def _sparse_unit(rng, n_in):
    x = rng.random(n_in).astype(np.float32) * (rng.random(n_in) < 0.3)
    x[rng.integers(n_in)] = 0.7
    x /= np.linalg.norm(x)
    idx = np.flatnonzero(x).astype(np.int64)
    return x, idx, x[idx].astype(np.float32)


@pytest.mark.parametrize("kernel,reference", [(instar_update, instar_update_reference), (oja_update, oja_update_reference)])
def test_rule_matches_reference_over_many_updates(kernel, reference):
    rng = np.random.default_rng(1)
    n_in, n_ch = 40, 6
    W = rng.random((n_in, n_ch)).astype(np.float32)
    W /= np.linalg.norm(W, axis=0)
    V, s, q = W.copy(), np.ones(n_ch, np.float32), (W.astype(np.float64) ** 2).sum(axis=0)
    dense = W.copy()
    for step in range(400):
        j = int(rng.integers(n_ch))
        x, idx, val = _sparse_unit(rng, n_in)
        a = np.float32(0.3 / (1 + step / 20))
        kernel(V, s, q, j, idx, val, len(idx), a)
        dense[:, j] = reference(dense[:, j], x, a)
    np.testing.assert_allclose(effective_weights(V, s), dense, rtol=2e-4, atol=2e-5)


def test_instar_keeps_unit_norm_and_moves_toward_input():
    rng = np.random.default_rng(2)
    V = np.full((10, 1), 1 / np.sqrt(10), np.float32)
    s, q = np.ones(1, np.float32), np.ones(1, np.float64)
    x, idx, val = _sparse_unit(rng, 10)
    before = float(effective_weights(V, s)[:, 0] @ x)
    instar_update(V, s, q, 0, idx, val, len(idx), np.float32(0.2))
    w = effective_weights(V, s)[:, 0]
    assert abs(np.linalg.norm(w) - 1) < 1e-5
    assert w @ x > before


def test_factored_storage_folds_back_when_scale_drifts():
    V = np.ones((4, 1), np.float32) / 2
    s, q = np.ones(1, np.float32), np.ones(1, np.float64)
    idx, val = np.array([0], np.int64), np.array([1.0], np.float32)
    for _ in range(2000):  # the shrink (1-a) compounds; rescale must keep s in range
        instar_update(V, s, q, 0, idx, val, 1, np.float32(0.5))
    assert 1e-3 <= s[0] <= 1e3
    np.testing.assert_allclose(effective_weights(V, s)[:, 0], [1, 0, 0, 0], atol=1e-4)
