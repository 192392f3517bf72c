"""Numba kernels: the per-sample hot loops of a competitive layer and of the readout.

Every kernel here has a plain-numpy twin in :mod:`model.reference` that the tests compare against.
The learning rules themselves live in :mod:`model.rules` (one module per rule); the kernels call
their ``*_update`` functions.

Layout and semantics shared with the reference:

* a layer's weights are ``w_j = s_j·V[:, j]`` with ``V`` ``float32[n_in, K]`` (input-major, so a
  sparse input gathers rows) and ``s`` ``float32[K]`` (see :mod:`model.rules.scaled`);
* a patch ``x`` is read in (dy, dx, c) order; patches with ``‖x‖ < min_norm`` are inactive;
* the competition score of channel ``j`` is ``(w_j · x/‖x‖) − θ_j``;
* per sample, the forward pass (emission map and readout features) uses the weights as they were
  before the sample; the updates are then applied position by position, in raster order.
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np

# the service calls kernels from several threads at once: use a thread-safe parallel backend
# (OpenMP here) instead of numba's default workqueue, which aborts on concurrent use
if "NUMBA_THREADING_LAYER" not in os.environ:
    nb.config.THREADING_LAYER = "threadsafe"

from model.rules.instar import instar_update
from model.rules.oja import oja_update

COMP_HARD, COMP_KWTA, COMP_SOFT = 0, 1, 2
RULE_INSTAR, RULE_OJA = 0, 1

# strict IEEE arithmetic (no fastmath): with reassociation or FMA contraction allowed, the code
# LLVM emits for a kernel depends on whether its callees were inlined from fresh IR or linked from
# numba's on-disk cache, so a restarted process rounded differently and replay was not bit-exact
_JIT = dict(cache=True, nogil=True)


@nb.njit(**_JIT)
def index_input(X, starts, chans, vals):
    """Sparse index of an input map: the non-zero channels of pixel ``p = y·W + x`` are
    ``chans[starts[p]:starts[p+1]]`` (ascending) with values ``vals[...]``. Built once per sample so
    that gathering a patch costs O(its non-zeros), not O(its size)."""
    h, w, channels = X.shape
    n = 0
    for yy in range(h):
        for xx in range(w):
            starts[yy * w + xx] = n
            for c in range(channels):
                v = X[yy, xx, c]
                if v != 0.0:
                    chans[n] = c
                    vals[n] = v
                    n += 1
    starts[h * w] = n


@nb.njit(**_JIT)
def gather_patch(starts, chans, vals, width, channels, oy, ox, kernel, stride, idx, val):
    """Collect the non-zero entries of the patch at output position (oy, ox) in (dy, dx, c) order;
    return (nnz, norm)."""
    n = 0
    sq = 0.0
    y0 = oy * stride
    x0 = ox * stride
    for dy in range(kernel):
        for dx in range(kernel):
            p = (y0 + dy) * width + x0 + dx
            base = (dy * kernel + dx) * channels
            for t in range(starts[p], starts[p + 1]):
                v = vals[t]
                idx[n] = base + chans[t]
                val[n] = v
                sq += v * v
                n += 1
    return n, np.float32(np.sqrt(sq))


@nb.njit(**_JIT)
def compete(score, mode, k, temperature, y, winners):
    """Fill ``y`` (zeros except winners) and ``winners``; return how many winners there are."""
    n_ch = score.shape[0]
    y[:] = 0.0
    if mode == COMP_SOFT:
        m = score.max()
        total = 0.0
        for j in range(n_ch):
            e = np.exp((score[j] - m) / temperature)
            y[j] = e
            total += e
        for j in range(n_ch):
            y[j] = y[j] / total
            winners[j] = j
        return n_ch
    if mode == COMP_HARD:
        m = score.max()
        for j in range(n_ch):
            if score[j] == m:
                y[j] = 1.0
                winners[0] = j
                return 1
    n_win = min(k, n_ch)
    for w in range(n_win):
        best = -1
        best_score = -np.inf
        for j in range(n_ch):
            if y[j] == 0.0 and score[j] > best_score:
                best_score = score[j]
                best = j
        y[best] = 1.0
        winners[w] = best
    return n_win


@nb.njit(**_JIT)
def layer_forward_sample(X, V, s, theta, kernel, stride, pool, grid, mode, k, temperature, min_norm,
                         out_map, feats, pos_active, pos_y, pos_win, pos_nwin, starts, chans, vals, compete_all):
    """Forward one sample through one layer with frozen weights.

    Writes the max-pooled emission map ``out_map[PH, PW, K]``, the sum-pooled triangle features
    ``feats[G, G, K]`` and, per output position, the competition result (used by the learner;
    skipped when ``compete_all`` is false and nobody reads the emission).
    """
    n_in, n_ch = V.shape
    width, channels = X.shape[1], X.shape[2]
    index_input(X, starts, chans, vals)
    need_competition = compete_all or out_map.shape[0] > 0
    oh = (X.shape[0] - kernel) // stride + 1
    ow = (X.shape[1] - kernel) // stride + 1
    out_map[:] = 0.0
    feats[:] = 0.0
    idx = np.empty(n_in, np.int64)
    val = np.empty(n_in, np.float32)
    z = np.empty(n_ch, np.float32)
    score = np.empty(n_ch, np.float32)
    y = np.empty(n_ch, np.float32)
    winners = np.empty(n_ch, np.int64)
    for oy in range(oh):
        for ox in range(ow):
            p = oy * ow + ox
            nnz, norm = gather_patch(starts, chans, vals, width, channels, oy, ox, kernel, stride, idx, val)
            if norm < min_norm or nnz == 0:
                pos_active[p] = False
                continue
            pos_active[p] = True
            z[:] = 0.0
            for t in range(nnz):
                row = idx[t]
                v = val[t]
                for j in range(n_ch):
                    z[j] += v * V[row, j]
            for j in range(n_ch):
                z[j] *= s[j]  # z becomes the raw dot products w·x
            position_outputs(z, norm, theta, oy, ox, oh, ow, p, pool, grid, mode, k, temperature,
                             need_competition, out_map, feats, pos_y, pos_win, pos_nwin, score, y, winners)


@nb.njit(**_JIT)
def position_outputs(z, norm, theta, oy, ox, oh, ow, p, pool, grid, mode, k, temperature, need_competition,
                     out_map, feats, pos_y, pos_win, pos_nwin, score, y, winners):
    """Everything one active position produces from its raw dot products ``z = w·x``: the
    competition (on the cosine-like ``w·x/‖x‖ − θ``), the triangle readout features and the
    max-pooled emission."""
    n_ch = z.shape[0]
    mean = np.float32(0.0)
    for j in range(n_ch):
        mean += z[j]
    mean /= n_ch
    n_win = 0
    if need_competition:  # a last layer that is not learning has no use for its competition
        inv = np.float32(1.0) / norm
        for j in range(n_ch):
            score[j] = z[j] * inv - theta[j]
        n_win = compete(score, mode, k, temperature, y, winners)
        pos_nwin[p] = n_win
        for w in range(n_win):
            pos_win[p, w] = winners[w]
            pos_y[p, w] = y[winners[w]]
    # readout features: "triangle" code relu(z - mean(z)), sum-pooled on a grid
    if grid > 0:
        cell = feats[oy * grid // oh, ox * grid // ow]
        for j in range(n_ch):
            cell[j] += max(z[j] - mean, np.float32(0.0))  # branch-free: vectorises
    # emission: the competition output, max-pooled for the next layer
    qy = oy // pool
    qx = ox // pool
    if qy < out_map.shape[0] and qx < out_map.shape[1]:
        for w in range(n_win):
            j = winners[w]
            if y[j] > out_map[qy, qx, j]:
                out_map[qy, qx, j] = y[j]


@nb.njit(**_JIT)
def layer_learn_sample(X, V, s, q, theta, wins, last_win, sample_index, kernel, stride, rule,
                       lr0, lr_halflife, lr_min, homeostasis, pos_active, pos_y, pos_win, pos_nwin,
                       starts, chans, vals):
    """Apply the local updates of one sample, position by position, to the winners only.

    ``starts/chans/vals`` must index ``X`` (built by the forward pass of the same sample)."""
    n_in, n_ch = V.shape
    width, channels = X.shape[1], X.shape[2]
    ow = (X.shape[1] - kernel) // stride + 1
    idx = np.empty(n_in, np.int64)
    val = np.empty(n_in, np.float32)
    decay = np.float32(homeostasis / n_ch)
    n_active = 0
    for p in range(pos_active.shape[0]):
        if not pos_active[p]:
            continue
        oy = p // ow
        ox = p - oy * ow
        nnz, norm = gather_patch(starts, chans, vals, width, channels, oy, ox, kernel, stride, idx, val)
        inv = np.float32(1.0) / norm
        for t in range(nnz):
            val[t] = val[t] * inv
        best_y = np.float32(-1.0)
        best_j = -1
        for w in range(pos_nwin[p]):
            j = pos_win[p, w]
            yj = pos_y[p, w]
            rate = np.float32(max(lr_min, lr0 / (1.0 + wins[j] / lr_halflife)))
            if rule == RULE_INSTAR:
                instar_update(V, s, q, j, idx, val, nnz, rate * yj)
            else:
                oja_update(V, s, q, j, idx, val, nnz, rate * yj)
            wins[j] += yj
            theta[j] += np.float32(homeostasis) * yj
            if yj > best_y:
                best_y = yj
                best_j = j
            if yj >= 0.5:
                last_win[j] = sample_index
        if best_j >= 0:
            last_win[best_j] = sample_index
        n_active += 1
    # every threshold decays by h/K per active position; nothing reads θ during the updates, so
    # the decay is applied once per sample (O(K) instead of O(K) per position)
    if homeostasis > 0.0 and n_active > 0:
        total = decay * np.float32(n_active)
        for j in range(n_ch):
            theta[j] -= total


@nb.njit(**_JIT)
def layer_learn_chunk(X, V, s, q, theta, wins, last_win, sample0, kernel, stride, pool, grid, mode, k,
                      temperature, min_norm, rule, lr0, lr_halflife, lr_min, homeostasis,
                      out_maps, feats):
    """Run samples ``X[n]`` through one layer in order: forward (prequential), then learn."""
    n_pos = ((X.shape[1] - kernel) // stride + 1) * ((X.shape[2] - kernel) // stride + 1)
    n_ch = V.shape[1]
    max_win = n_ch if mode == COMP_SOFT else (1 if mode == COMP_HARD else min(k, n_ch))
    pos_active = np.zeros(n_pos, np.bool_)
    pos_y = np.zeros((n_pos, max_win), np.float32)
    pos_win = np.zeros((n_pos, max_win), np.int64)
    pos_nwin = np.zeros(n_pos, np.int64)
    n_pix = X.shape[1] * X.shape[2]
    starts = np.empty(n_pix + 1, np.int64)
    chans = np.empty(n_pix * X.shape[3], np.int64)
    vals = np.empty(n_pix * X.shape[3], np.float32)
    for n in range(X.shape[0]):
        layer_forward_sample(X[n], V, s, theta, kernel, stride, pool, grid, mode, k, temperature,
                             min_norm, out_maps[n], feats[n], pos_active, pos_y, pos_win, pos_nwin,
                             starts, chans, vals, True)
        layer_learn_sample(X[n], V, s, q, theta, wins, last_win, sample0 + n, kernel, stride, rule,
                           lr0, lr_halflife, lr_min, homeostasis, pos_active, pos_y, pos_win, pos_nwin,
                           starts, chans, vals)


@nb.njit(parallel=True, **_JIT)
def layer_forward_chunk(X, V, s, theta, kernel, stride, pool, grid, mode, k, temperature, min_norm,
                        out_maps, feats):
    """Forward many samples through one layer with frozen weights, in parallel over samples."""
    n_pos = ((X.shape[1] - kernel) // stride + 1) * ((X.shape[2] - kernel) // stride + 1)
    n_ch = V.shape[1]
    max_win = n_ch if mode == COMP_SOFT else (1 if mode == COMP_HARD else min(k, n_ch))
    n_pix = X.shape[1] * X.shape[2]
    for n in nb.prange(X.shape[0]):
        pos_active = np.zeros(n_pos, np.bool_)
        pos_y = np.zeros((n_pos, max_win), np.float32)
        pos_win = np.zeros((n_pos, max_win), np.int64)
        pos_nwin = np.zeros(n_pos, np.int64)
        starts = np.empty(n_pix + 1, np.int64)
        chans = np.empty(n_pix * X.shape[3], np.int64)
        vals = np.empty(n_pix * X.shape[3], np.float32)
        layer_forward_sample(X[n], V, s, theta, kernel, stride, pool, grid, mode, k, temperature,
                             min_norm, out_maps[n], feats[n], pos_active, pos_y, pos_win, pos_nwin,
                             starts, chans, vals, False)


@nb.njit(**_JIT)
def readout_scores(F, Wr, out):
    """``out[n] = F[n] @ Wr`` with a fixed summation order (bit-stable whatever the batch size)."""
    n_cls = Wr.shape[1]
    for n in range(F.shape[0]):
        for c in range(n_cls):
            out[n, c] = 0.0
        for i in range(F.shape[1]):
            f = F[n, i]
            if f != 0.0:
                for c in range(n_cls):
                    out[n, c] += f * Wr[i, c]


@nb.njit(**_JIT)
def delta_rule_chunk(F, labels, Wr, lr, scores):
    """Normalised LMS: per labeled sample, predict (into ``scores``) then ``Wr += lr·(t−s)·f/‖f‖²``."""
    n_cls = Wr.shape[1]
    for n in range(F.shape[0]):
        for c in range(n_cls):
            scores[n, c] = 0.0
        sq = np.float32(1e-6)
        for i in range(F.shape[1]):
            f = F[n, i]
            sq += f * f
            if f != 0.0:
                for c in range(n_cls):
                    scores[n, c] += f * Wr[i, c]
        if labels[n] < 0:
            continue
        step = np.float32(lr) / sq
        for c in range(n_cls):
            err = (np.float32(1.0) if c == labels[n] else np.float32(0.0)) - scores[n, c]
            g = step * err
            for i in range(F.shape[1]):
                Wr[i, c] += g * F[n, i]
