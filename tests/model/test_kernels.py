"""The numba layer and readout kernels against the plain-numpy reference (model.reference)."""

import numpy as np
import pytest

from model import kernels, reference
from model.config import LayerConfig, ReadoutConfig
from model.layers import CompetitiveLayer
from model.readout import StreamingLeastSquares


def _images(rng, n, h=12, w=12, c=1):
    X = rng.random((n, h, w, c)).astype(np.float32)
    X[X < 0.6] = 0.0  # sparse, like ink on a blank page
    return X


def _assert_learns_as_reference(layer, X, sample0):
    """``layer`` learns ``X`` as the plain-numpy reference does, sample by sample."""
    W = layer.weights.copy()
    theta, wins, last_win = layer.thresholds.copy(), layer.wins.copy(), layer.last_win.copy()
    out, feats = layer.learn(X, sample0=sample0)
    for n in range(len(X)):
        e_ref, f_ref = reference.layer_step(X[n], W, theta, wins, last_win, sample0 + n, layer.config,
                                            layer.emission_shape)
        np.testing.assert_allclose(out[n], e_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(feats[n], f_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(layer.weights, W, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(layer.thresholds, theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.wins, wins, rtol=1e-5)
    np.testing.assert_array_equal(layer.last_win, last_win)


def _assert_predicts_as_reference(layer, X):
    """``layer``'s frozen forward pass of ``X`` gives the reference's emissions and features and
    changes no weight; returns the emissions."""
    W, theta = layer.weights.copy(), layer.thresholds.copy()
    out, feats = layer.forward(X)
    for n in range(len(X)):
        e_ref, f_ref = reference.layer_step(X[n], W, theta, layer.wins.copy(), layer.last_win.copy(), 0,
                                            layer.config, layer.emission_shape, learn=False)
        np.testing.assert_allclose(out[n], e_ref, atol=1e-6)
        np.testing.assert_allclose(feats[n], f_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(layer.weights, W)
    return out


@pytest.mark.parametrize("mode", ["hard", "kwta", "soft"])
@pytest.mark.parametrize("rule", ["instar", "oja"])
@pytest.mark.parametrize("pool_mode", ["max", "winner"])
# dense mask walk, sparse-index gather, and the index's 8-channel word scan
@pytest.mark.parametrize("in_channels", [2, 6, 16])
def test_layer_learning_matches_reference(mode, rule, pool_mode, in_channels):
    rng = np.random.default_rng(0)
    cfg = LayerConfig(channels=8, kernel=3, stride=1, rule=rule, pool=2, readout_grid=2, pool_mode=pool_mode,
                      competition={"mode": mode, "k": 3, "temperature": 0.2},
                      plasticity={"lr0": 0.2, "lr_halflife": 5.0, "homeostasis": 0.01})
    layer = CompetitiveLayer(cfg, (12, 12, in_channels), np.random.default_rng(5))
    _assert_learns_as_reference(layer, _images(rng, 6, c=in_channels), sample0=10)


@pytest.mark.parametrize("channels", [16, 64])  # hard WTA on vectors; 64 units: the constant-size path
@pytest.mark.parametrize("pool_mode", ["max", "winner"])
@pytest.mark.parametrize("in_channels", [1, 16])  # dense mask walk; sparse gather
def test_vector_hard_wta_learns_and_predicts_as_the_reference(channels, pool_mode, in_channels):
    rng = np.random.default_rng(channels + in_channels)
    cfg = LayerConfig(channels=channels, kernel=3, stride=1, pool=2, readout_grid=2, pool_mode=pool_mode,
                      plasticity={"lr0": 0.2, "lr_halflife": 5.0, "homeostasis": 0.01})
    layer = CompetitiveLayer(cfg, (12, 12, in_channels), np.random.default_rng(5))
    X = _images(rng, 6, c=in_channels)
    _assert_learns_as_reference(layer, X, sample0=0)
    # prediction: the competition's scores are not stored on this path
    assert _assert_predicts_as_reference(layer, X).any()


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("in_channels", [1, 6, 16])
@pytest.mark.parametrize("binary", [False, True])  # 0/1 inputs, as hard-WTA layers emit, take a path of their own
def test_frozen_forward_matches_reference_and_changes_nothing(stride, in_channels, binary):
    rng = np.random.default_rng(3)
    cfg = LayerConfig(channels=6, kernel=3, stride=stride, pool=2, readout_grid=3)
    layer = CompetitiveLayer(cfg, (12, 12, in_channels), np.random.default_rng(1))
    X = _images(rng, 5, c=in_channels)
    if binary:
        X = (X > 0).astype(np.float32)
    _assert_predicts_as_reference(layer, X)


def test_first_argmax_is_numpys_argmax_with_signed_zeros_tied():
    rng = np.random.default_rng(7)
    for n in (1, 2, 7, 64, 256, 513):
        for _ in range(50):
            a = (rng.standard_normal(n) * rng.choice([1e-30, 1.0, 1e30])).astype(np.float32)
            if n > 2:  # a tied maximum: the first one wins
                a[rng.integers(n, size=2)] = a.max()
            assert kernels.first_argmax(a) == np.argmax(a)
    # extremes, negative values only, and -0.0 tying with +0.0 (the first of them wins either way)
    cases = [[-np.inf, -3.0e38, -1.0], [np.float32(3.4e38), np.inf, np.inf], [-2.0, -0.5, -1.0],
             [-1.0, -0.0, 0.0, -0.0], [-1.0, 0.0, -0.0], [np.float32(1e-45), 0.0], [-0.0, -np.float32(1e-45)]]
    for case in cases:
        a = np.array(case, np.float32)
        assert kernels.first_argmax(a) == np.argmax(a), case


@pytest.mark.parametrize("channels", [16, 48])
@pytest.mark.parametrize("in_channels", [1, 16])  # dense mask-walk and sparse gather inputs
def test_vectorised_hard_wta_gives_the_bits_of_the_scalar_path(channels, in_channels):
    """Hard WTA over a multiple of 16 channels runs on 16-lane vectors; k-WTA with k=1 picks the
    same winner through the scalar code. Learning and frozen forward must agree bit for bit."""
    rng = np.random.default_rng(channels + in_channels)
    X = _images(rng, 8, c=in_channels)
    X[0] = 0.0          # a blank sample and a sample with one faint pixel
    X[1] = 0.0
    X[1, 5, 5, 0] = 0.01
    results = []
    for competition in ({"mode": "hard"}, {"mode": "kwta", "k": 1}):
        cfg = LayerConfig(channels=channels, kernel=3, stride=1, pool=2, readout_grid=2, competition=competition,
                          plasticity={"lr0": 0.2, "homeostasis": 0.01})
        layer = CompetitiveLayer(cfg, (12, 12, in_channels), np.random.default_rng(3))
        learned = layer.learn(X, sample0=0)
        frozen = layer.forward(X[::-1].copy())
        results.append((learned, frozen, layer.vectors.copy(), layer.scales.copy(), layer.thresholds.copy(),
                        layer.wins.copy()))
    for a, b in zip(*results):
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(x, y)
    # a last layer that emits nothing computes its features only (no competition)
    features = []
    for competition in ({"mode": "hard"}, {"mode": "kwta", "k": 1}):
        cfg = LayerConfig(channels=channels, kernel=3, stride=1, pool=2, readout_grid=2, competition=competition)
        layer = CompetitiveLayer(cfg, (12, 12, in_channels), np.random.default_rng(4), emits=False)
        features.append(layer.forward(X)[1])
    np.testing.assert_array_equal(features[0], features[1])
    assert features[0].any()


@pytest.mark.parametrize("channels", [1, 3])
# a position pair's patch rows in fields of 8 bits of one word (all rows in one walk); 16 bits
# (9 rows: walks of 4, 4 and 1 rows); 32 bits (a pair spans 17 columns)
@pytest.mark.parametrize("kernel,stride", [(3, 1), (5, 1), (4, 2), (9, 1), (11, 6)])
# one vector; four vectors then one; no whole vector; 64 (with one channel, 5x5 patches and stride
# 1: the MNIST presets' first layer, which has its own code with these sizes as constants)
@pytest.mark.parametrize("units", [16, 80, 12, 64])
@pytest.mark.parametrize("width", [9, 40])  # 40: patch rows that cross a 32-pixel mask word
def test_dense_dot_products_add_each_positions_entries_in_patch_order(channels, kernel, stride, units, width):
    """The pixel-mask walk against the plain definition: per position, ``sum += v·w`` over the
    patch's non-zero entries in (dy, dx, c) order, in float32, then times the unit's scale; the
    norm and non-zero count too."""
    rng = np.random.default_rng(kernel * 10 + channels + width)
    width = max(width, kernel)
    X = _images(rng, 1, h=11, w=width, c=channels)[0]
    V = rng.standard_normal((kernel * kernel * channels, units)).astype(np.float32)
    oh, ow = (11 - kernel) // stride + 1, (width - kernel) // stride + 1
    dots = np.full((oh * ow, units), np.nan, np.float32)
    norms = np.empty(oh * ow, np.float32)
    counts = np.empty(oh * ow, np.int64)
    masks = np.full((11, (width >> 5) + 2), -1, np.int64)  # stale bits: the kernel must clear them
    idx, val = np.empty(V.shape[0] + 4, np.int64), np.empty(V.shape[0] + 4, np.float32)
    scales = (rng.random(units) + 0.5).astype(np.float32)
    kernels.dense_dot_products(X, V, scales, kernel, stride, masks, idx, val, dots, norms, counts)
    for oy in range(oh):
        for ox in range(ow):
            expected = np.zeros(units, np.float32)
            sq, n = 0.0, 0
            for dy in range(kernel):
                for dx in range(kernel):
                    for c in range(channels):
                        v = X[oy * stride + dy, ox * stride + dx, c]
                        if v != 0.0:
                            expected = expected + v * V[(dy * kernel + dx) * channels + c]
                            sq += float(np.float32(v * v))
                            n += 1
            p = oy * ow + ox
            np.testing.assert_array_equal(dots[p], expected * scales)
            assert norms[p] == np.float32(np.sqrt(sq)) and counts[p] == n


@pytest.mark.parametrize("units", [16, 48, 80, 272])  # one vector; three; four then one; several blocks of four
@pytest.mark.parametrize("ones", [True, False])  # a hard-WTA emission, or any values
@pytest.mark.parametrize("nnz", [0, 3, 9, 36])
def test_dot_products_in_registers_give_the_bits_of_the_unit_by_unit_loop(units, ones, nnz):
    rng = np.random.default_rng(units + nnz)
    V = kernels.aligned_copy(rng.standard_normal((100, units)).astype(np.float32))
    s = (rng.random(units) + 0.5).astype(np.float32)
    idx = np.sort(rng.choice(100, nnz, replace=False)).astype(np.int64)
    val = np.ones(nnz, np.float32) if ones else rng.random(nnz).astype(np.float32)
    vectors, scalar = kernels.aligned_copy(np.full((2, units), np.nan, np.float32)), np.full(units, np.nan, np.float32)
    kernels.dot_products(V, s, idx, val, nnz, vectors, units)  # into the second row
    kernels.dot_products_scalar(V, s, idx, val, nnz, ones, scalar)
    assert kernels.all_ones(val, nnz) == (ones or nnz == 0)
    np.testing.assert_array_equal(vectors[1], scalar)
    assert np.isnan(vectors[0]).all()  # nothing written outside its row
    np.testing.assert_allclose(scalar, (val @ V[idx]) * s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("units", [16, 24])  # vectors; unit by unit
def test_sparse_dot_products_give_each_positions_patch_sums(units):
    rng = np.random.default_rng(units)
    X = rng.random((6, 7, 32)).astype(np.float32)
    X[X < 0.9] = 0.0
    X[0:3, 0:3] = 0.0  # a position without non-zeros
    X[4, 5, 3:9] = 1.0
    kernel, stride = 3, 1
    n_in = kernel * kernel * 32
    V = kernels.aligned_copy(rng.standard_normal((n_in, units)).astype(np.float32))
    s = (rng.random(units) + 0.5).astype(np.float32)
    scratch = kernels.forward_scratch(X[None], kernel, stride, n_in, units, kernels.COMP_HARD, 1, (0, 0))
    dots, norms, counts = scratch.dots, scratch.norms, scratch.counts
    dots[:] = np.nan
    kernels.sparse_dot_products(X, V, s, kernel, stride, scratch.starts, scratch.chans, scratch.vals, scratch.idx,
                                scratch.val, scratch.z, dots, norms, counts)
    idx, val, z = np.empty(n_in + 8, np.int64), np.empty(n_in + 8, np.float32), np.empty(units, np.float32)
    ow = 7 - kernel + 1
    for p in range(len(dots)):
        nnz, norm = kernels.patch_at(X, scratch.starts, scratch.chans, scratch.vals, p // ow, p % ow, kernel, stride,
                                     idx, val)
        assert (counts[p], norms[p]) == (nnz, norm)
        if nnz == 0:
            assert np.isnan(dots[p]).all()  # left alone: nothing reads it
            continue
        kernels.dot_products_scalar(V, s, idx, val, nnz, kernels.all_ones(val, nnz), z)
        np.testing.assert_array_equal(dots[p], z)
    assert (counts == 0).any() and (counts > 0).any()


@pytest.mark.parametrize("channels", [5, 8, 16, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # the layers' maps are float32; others still work
def test_index_input_lists_every_non_zero_in_order(channels, dtype):
    rng = np.random.default_rng(channels)
    X = rng.random((7, 6, channels)).astype(dtype)
    X[X < 0.97] = 0.0  # as sparse as an emission map
    X[0, 0, :3] = [0.5, -0.0, 0.25]  # a negative zero has non-zero bits but is no entry
    X[3, 3, channels - 1] = 1.0  # the last channel of a pixel
    starts = np.empty(7 * 6 + 1, np.int64)
    chans = np.empty(X.size, np.int64)
    vals = np.empty(X.size, dtype)
    kernels.index_input(X, starts, chans, vals)
    for p, (y, x) in enumerate(np.ndindex(7, 6)):
        expected = np.flatnonzero(X[y, x])
        got = chans[starts[p]:starts[p + 1]]
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(vals[starts[p]:starts[p + 1]], X[y, x, expected])


def test_only_winners_learn():
    cfg = LayerConfig(channels=16, kernel=3, pool=1, readout_grid=0, plasticity={"homeostasis": 0.0})
    layer = CompetitiveLayer(cfg, (6, 6, 1), np.random.default_rng(2))
    X = np.zeros((1, 6, 6, 1), np.float32)
    X[0, 2:4, 2:4, 0] = 1.0  # one small blob: few active positions, few winners
    before = layer.weights.copy()
    out, _ = layer.learn(X, 0)
    changed = np.flatnonzero(np.any(layer.weights != before, axis=0))
    winners = np.flatnonzero(out[0].reshape(-1, 16).max(axis=0) > 0)
    assert len(changed) > 0
    assert set(changed) <= set(winners)
    assert len(winners) < 16
    np.testing.assert_array_equal(layer.wins > 0, np.isin(np.arange(16), winners))


def test_homeostasis_revives_a_unit_that_never_wins():
    """A unit whose weights point away from every input only wins once its threshold has fallen."""
    def run(homeostasis):
        cfg = LayerConfig(channels=4, kernel=2, pool=1, readout_grid=0,
                          plasticity={"homeostasis": homeostasis, "lr0": 0.05})
        layer = CompetitiveLayer(cfg, (2, 2, 1), np.random.default_rng(0))
        layer.vectors[:] = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32).T[:, :4]
        layer.vectors[:, 3] = np.array([0.0, 0.0, 0.0, 1.0], np.float32)  # only inputs with pixel 3 excite it
        layer.scales[:], layer.sq_norms[:] = 1.0, 1.0
        rng = np.random.default_rng(1)
        X = rng.random((3000, 2, 2, 1)).astype(np.float32) * np.array([1, 1, 1, 0.0], np.float32).reshape(2, 2, 1)
        layer.learn(X, 0)
        return layer.wins[3]

    assert run(0.0) == 0  # without homeostasis the unit is dead
    assert run(0.01) > 50  # with it, the unit is recruited and keeps winning


@pytest.mark.parametrize("in_channels", [1, 6])
def test_consolidated_units_stop_changing_and_match_reference(in_channels):
    """With ``consolidation`` a unit that has won that often keeps its weights and threshold."""
    rng = np.random.default_rng(6)
    cfg = LayerConfig(channels=8, kernel=3, pool=2, readout_grid=2,
                      plasticity={"lr0": 0.2, "lr_halflife": 5.0, "homeostasis": 0.01, "consolidation": 30.0})
    layer = CompetitiveLayer(cfg, (12, 12, in_channels), np.random.default_rng(5))
    W = layer.weights.copy()
    theta, wins, last_win = layer.thresholds.copy(), layer.wins.copy(), layer.last_win.copy()
    X = _images(rng, 12, c=in_channels)
    layer.learn(X, sample0=0)
    for n in range(len(X)):
        reference.layer_step(X[n], W, theta, wins, last_win, n, cfg, layer.emission_shape)
    np.testing.assert_allclose(layer.weights, W, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(layer.thresholds, theta, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.wins, wins, rtol=1e-5)
    np.testing.assert_array_equal(layer.last_win, last_win)
    assert (layer.wins >= 30.0).all()
    before, theta_before, wins_before = layer.weights.copy(), layer.thresholds.copy(), layer.wins.copy()
    layer.learn(_images(rng, 4, c=in_channels), sample0=len(X))
    np.testing.assert_array_equal(layer.weights, before)
    np.testing.assert_array_equal(layer.thresholds, theta_before)
    assert (layer.wins > wins_before).any()           # still competing and counting its wins


def test_readout_scores_and_delta_rule_match_reference():
    rng = np.random.default_rng(5)
    F = rng.random((50, 20)).astype(np.float32)
    W = rng.standard_normal((20, 4)).astype(np.float32)
    out = np.zeros((50, 4), np.float32)
    kernels.readout_scores(F, W, out)
    np.testing.assert_allclose(out, reference.readout_scores(F, W), rtol=1e-5, atol=1e-5)
    labels = rng.integers(-1, 4, 50)
    W1, W2 = W.copy(), W.copy()
    s1 = np.zeros((50, 4), np.float32)
    kernels.delta_rule_chunk(F, labels, W1, np.float32(0.1), s1)
    s2 = reference.delta_rule(F, labels, W2, 0.1)
    np.testing.assert_allclose(s1, s2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(W1, W2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("d", [1, 2, 7, 64, 301])
@pytest.mark.parametrize("classes", [1, 3, 4, 10, 16, 17, 35])
def test_readout_scores_follow_their_documented_order_whatever_the_batch(d, classes):
    """Per sample and class: even-index features summed in order, odd-index ones likewise, then
    the two added, in float32 without fused multiply-adds; the same bits in any batch."""
    rng = np.random.default_rng(d * 100 + classes)
    F = rng.random((37, d)).astype(np.float32)   # two full 16-sample blocks and a short one
    W = rng.standard_normal((d, classes)).astype(np.float32)
    out = np.zeros((37, classes), np.float32)
    kernels.readout_scores(F, W, out)
    expected = np.zeros((37, classes), np.float32)
    for start in (0, 1):
        partial = np.zeros((37, classes), np.float32)
        for i in range(start, d, 2):
            partial = partial + F[:, i:i + 1] * W[i]    # float32 product, then float32 sum
        expected = partial if start == 0 else expected + partial
    np.testing.assert_array_equal(out, expected)
    for a, b in [(0, 1), (5, 21), (16, 37), (30, 37)]:
        alone = np.zeros((b - a, classes), np.float32)
        kernels.readout_scores(np.ascontiguousarray(F[a:b]), W, alone)
        np.testing.assert_array_equal(alone, out[a:b])


@pytest.mark.parametrize("forgetting", [1.0, 0.99])
@pytest.mark.parametrize("exact_every,cg_iterations", [(700, 1), (10_000, 200)])  # Cholesky; CG refinement
def test_streaming_least_squares_equals_exact_ridge(forgetting, exact_every, cg_iterations):
    rng = np.random.default_rng(6)
    d, classes, n = 12, 3, 700
    F = rng.random((n, d)).astype(np.float32)
    true = rng.standard_normal((d, classes))
    labels = (F @ true).argmax(axis=1)
    cfg = ReadoutConfig(ridge=1e-2, first_solve=700, solve_every=700, forgetting=forgetting,
                        exact_every=exact_every, cg_iterations=cg_iterations)
    readout = StreamingLeastSquares(cfg, d, classes)
    readout.learn_many(F, labels)
    exact = reference.ridge_solution(F, labels, classes, 1e-2, forgetting)
    np.testing.assert_allclose(readout.weights, exact, rtol=1e-3, atol=1e-3)


def test_readout_predictions_use_weights_fixed_between_solves():
    rng = np.random.default_rng(7)
    F = rng.random((300, 5)).astype(np.float32)
    labels = rng.integers(0, 2, 300)
    readout = StreamingLeastSquares(ReadoutConfig(first_solve=100, solve_every=100), 5, 2)
    scores = readout.learn_many(F, labels)
    assert np.all(scores[:100] == 0)  # nothing solved before the first 100 labels
    assert np.any(scores[100:200] != 0)
    assert readout.solves == 3


def test_simd_vectors_take_float32_only():
    """A float64 would be rounded to float32 silently; the intrinsics refuse it when compiling."""
    import numba

    from model.simd import vsplat, vstore

    @numba.njit
    def splat(out, value):
        vstore(out, 0, vsplat(value))

    out = np.zeros(16, np.float32)
    splat(out, np.float32(0.5))
    np.testing.assert_array_equal(out, np.full(16, 0.5, np.float32))
    with pytest.raises((TypeError, numba.core.errors.TypingError), match="float32"):
        splat(out, 0.5)
    with pytest.raises((TypeError, numba.core.errors.TypingError), match="float32"):
        splat(np.zeros(16), np.float32(0.5))


def test_simd_address_loads_and_stores_read_and_write_the_arrays_values():
    import numba

    from model.simd import vadd, vload_at, vstore_at

    @numba.njit
    def add_at(a, b, out, offset):
        vstore_at(np.int64(out.ctypes.data), offset, vadd(vload_at(np.int64(a.ctypes.data), offset),
                                                          vload_at(np.int64(b.ctypes.data), offset)))

    a, b = np.arange(40, dtype=np.float32), np.full(40, 0.25, np.float32)
    out = np.full(40, np.nan, np.float32)
    add_at(a, b, out, 3)  # an offset in values, at no particular alignment
    np.testing.assert_array_equal(out[3:19], a[3:19] + b[3:19])
    assert np.isnan(out[:3]).all() and np.isnan(out[19:]).all()
    with pytest.raises((TypeError, numba.core.errors.TypingError), match="address"):
        numba.njit(lambda a: vload_at(0.5, 0))(a)


def test_unowned_views_share_the_data_and_hold_no_reference():
    """An unowned view (and each array of an unowned tuple) reads and writes its owner's memory,
    with the owner's shape and strides, and passing it around leaves the owner's count as it was."""
    import sys

    import numba

    from model.nrt import unowned

    @numba.njit
    def fill(a, value):
        for i in range(a.shape[0]):
            a[i] = value

    @numba.njit
    def through_views(a, b):
        pair = unowned((a, b[::2]))
        fill(unowned(a), 2.0)
        fill(pair[1], 7.0)
        return pair[0].shape[0], pair[1].strides[0], pair[0].sum()

    a = np.zeros(5)
    b = np.zeros(6, np.float32)
    before = sys.getrefcount(a), sys.getrefcount(b)
    assert through_views(a, b) == (5, 8, 10.0)
    np.testing.assert_array_equal(a, np.full(5, 2.0))
    np.testing.assert_array_equal(b, [7, 0, 7, 0, 7, 0])
    assert (sys.getrefcount(a), sys.getrefcount(b)) == before
    with pytest.raises((TypeError, numba.core.errors.TypingError), match="array"):
        numba.njit(lambda x: unowned(x))(1.0)
