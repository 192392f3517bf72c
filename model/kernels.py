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

from collections import namedtuple

import numba as nb
import numpy as np
from numba.extending import overload

from model.nrt import unowned
from model.rules.instar import instar_update
from model.rules.oja import oja_update
from model.simd import (LANES, lowest_bit, nonzero_lanes, vadd, vfirst_equal, vhalves_add, vhmax, vload, vload_at, vmax, vmul, vsplat, vstore,
                        vstore_at, vsub, vtree_sum, vzero, vzero_half)

COMP_HARD, COMP_KWTA, COMP_SOFT = 0, 1, 2
# bytes of a cache line: a 16-lane vector at a multiple of it is one line, not parts of two
CACHE_LINE = 64
RULE_INSTAR, RULE_OJA = 0, 1

# strict IEEE arithmetic (no fastmath): with reassociation or FMA contraction allowed, the code
# LLVM emits for a kernel depends on whether its callees were inlined from fresh IR or linked from
# numba's on-disk cache, so a restarted process rounded differently and replay was not bit-exact
_JIT = dict(cache=True, nogil=True)


def aligned_empty(n, dtype):
    """An uninitialised 1-D array of ``n`` values starting at a cache-line boundary (numba's own
    allocations are 32-byte aligned, numpy's 16: half of all 16-lane vectors in them would straddle
    two lines). Plain Python, and compiled where kernels call it (the overload below): called from
    Python as a compiled function, numba's dispatch typed the ``dtype`` class at every call,
    ~10 µs, the time of predicting a tenth of a sample."""
    itemsize = np.empty(0, dtype).itemsize
    buffer = np.empty(n + CACHE_LINE // itemsize, dtype)
    skip = (-buffer.ctypes.data % CACHE_LINE) // itemsize
    return buffer[skip:skip + n]


@overload(aligned_empty, jit_options=_JIT)
def _aligned_empty_in_kernels(n, dtype):
    return aligned_empty  # the same body, compiled


def aligned_copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` that starts at a cache-line boundary (numpy's allocations
    are 16-byte aligned), for the arrays the kernels read 16 lanes at a time."""
    out = aligned_empty(array.size, array.dtype.type).reshape(array.shape)
    out[...] = array
    return out


@nb.njit(**_JIT)
def index_input(X, starts, chans, vals):
    """Sparse index of an input map: the non-zero channels of pixel ``p = y·W + x`` are
    ``chans[starts[p]:starts[p+1]]`` (ascending) with values ``vals[...]``. Built once per sample so
    that gathering a patch costs O(its non-zeros), not O(its size)."""
    h, w, channels = X.shape
    flat = np.ascontiguousarray(X).reshape(h * w * channels)
    n = 0
    if channels % LANES == 0:
        # emission maps are ~97 % zeros: one vector compare per 16 channels, then a loop over the
        # non-zeros only (a test per value, or per 8 values, cost 3-4x more)
        for p in range(h * w):
            starts[p] = n
            base = p * channels
            for c0 in range(0, channels, LANES):
                mask = nonzero_lanes(flat, base + c0)
                while mask != 0:
                    c = c0 + lowest_bit(mask)
                    chans[n] = c
                    vals[n] = flat[base + c]
                    n += 1
                    mask &= mask - 1
    else:
        for p in range(h * w):
            starts[p] = n
            base = p * channels
            for c in range(channels):
                # branch-free compaction: always write, advance only past a non-zero (a branch on
                # the data would mispredict at every stroke edge)
                v = flat[base + c]
                chans[n] = c
                vals[n] = v
                n += v != 0.0
    starts[h * w] = n


# entries per pixel that gather_patch copies without a branch: the most a hard-WTA layer with
# 2x2 pooling emits per cell
GATHER_SPAN = 4
# inputs with at most this many channels are gathered straight from the dense map: cheaper than
# indexing them first when a pixel holds so few values
DENSE_GATHER_CHANNELS = 4


@nb.njit(**_JIT)
def gather_dense_patch(X, oy, ox, kernel, stride, idx, val):
    """Like :func:`gather_patch`, reading the dense map ``X`` (branch-free compaction)."""
    channels = X.shape[2]
    n = 0
    y0 = oy * stride
    x0 = ox * stride
    for dy in range(kernel):
        for dx in range(kernel):
            base = (dy * kernel + dx) * channels
            for c in range(channels):
                v = X[y0 + dy, x0 + dx, c]
                idx[n] = base + c
                val[n] = v
                n += v != 0.0
    sq = 0.0
    for t in range(n):  # after the compaction: the serial sum runs over the non-zeros only
        sq += val[t] * val[t]
    return n, np.float32(np.sqrt(sq))


@nb.njit(**_JIT)
def patch_at(X, starts, chans, vals, oy, ox, kernel, stride, idx, val):
    """The non-zero entries of the patch at (oy, ox): from the dense map for few-channel inputs,
    else from the sparse index built by :func:`index_input`."""
    if X.shape[2] <= DENSE_GATHER_CHANNELS:
        return gather_dense_patch(X, oy, ox, kernel, stride, idx, val)
    return gather_patch(starts, chans, vals, X.shape[1], X.shape[2], oy, ox, kernel, stride, idx, val)


# inlined (as dot_products): called at every position of a sparse input, the calls with their
# array arguments cost ~7 % of batched prediction (Zen 3 host, 2026-11-27)
@nb.njit(inline="always", **_JIT)
def gather_patch(starts, chans, vals, width, channels, oy, ox, kernel, stride, idx, val):
    """Collect the non-zero entries of the patch at output position (oy, ox) in (dy, dx, c) order;
    return (nnz, norm).

    The first ``GATHER_SPAN`` entries of each pixel are copied whatever its count (a loop exit
    that depends on the count mispredicted at most pixels of an emission map); copies past the
    count are overwritten by the next pixel's or never read, and add zero to the norm. So
    ``chans``/``vals`` and ``idx``/``val`` need ``GATHER_SPAN`` spare entries at their ends."""
    n = 0
    sq = 0.0
    y0 = oy * stride
    x0 = ox * stride
    for dy in range(kernel):
        for dx in range(kernel):
            p = (y0 + dy) * width + x0 + dx
            base = (dy * kernel + dx) * channels
            t0 = starts[p]
            count = starts[p + 1] - t0
            for i in range(GATHER_SPAN):
                v = vals[t0 + i]
                idx[n + i] = base + chans[t0 + i]
                val[n + i] = v
                sq += v * v if i < count else np.float32(0.0)
            for t in range(t0 + GATHER_SPAN, t0 + count):  # rarely any (hard WTA, 2x2 pooling: none)
                v = vals[t]
                idx[n + t - t0] = base + chans[t]
                val[n + t - t0] = v
                sq += v * v
            n += count
    return n, np.float32(np.sqrt(sq))


@nb.njit(**_JIT)
def hard_winner(score, y, winners):
    """Hard WTA: the first best-scoring channel wins (y=1). Only ``y[winner]`` is ever read back,
    so the rest of ``y`` is not cleared."""
    j = first_argmax(score)
    y[j] = 1.0
    winners[0] = j
    return 1


@nb.njit(**_JIT)
def compete_several(score, mode, k, temperature, y, winners):
    """k-WTA or soft-WTA: fill ``y`` (zeros except winners) and ``winners``; return how many
    winners there are (hard WTA is :func:`hard_winner`)."""
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
def layer_forward_sample(X, V, s, theta, kernel, stride, pool, grid, mode, k, temperature, min_norm, pool_winner,
                         out_map, feats, scratch, compete_all):
    """Forward one sample through one layer with frozen weights.

    Writes the pooled emission map ``out_map[PH, PW, K]`` (the max of the competition outputs over
    a pooling cell, or with ``pool_winner`` only its best-scoring winner), the sum-pooled triangle features
    ``feats[G, G, K]`` and, with ``compete_all`` (for the learner), per output position the
    competition result into ``scratch`` (see :func:`forward_scratch`). Without ``compete_all`` a
    layer whose emission nobody reads (the last) skips its competition.
    """
    pos_active, pos_y, pos_win, pos_nwin = scratch.pos_active, scratch.pos_y, scratch.pos_win, scratch.pos_nwin
    starts, chans, vals, masks = scratch.starts, scratch.chans, scratch.vals, scratch.masks
    dots, norms, counts, idx, val = scratch.dots, scratch.norms, scratch.counts, scratch.idx, scratch.val
    z, score, y, winners = scratch.z, scratch.score, scratch.y, scratch.winners
    cell_score, cell_winner, cell_y = scratch.cell_score, scratch.cell_winner, scratch.cell_y
    n_ch = V.shape[1]
    # every position's dot products first, into ``dots`` (one call per sample: see hard_position_vectors)
    if X.shape[2] <= DENSE_GATHER_CHANNELS:
        dense_dot_products(X, V, s, kernel, stride, masks, idx, val, dots, norms, counts)
    else:
        sparse_dot_products(X, V, s, kernel, stride, starts, chans, vals, idx, val, z, dots, norms, counts)
    need_competition = compete_all or out_map.shape[0] > 0
    oh = (X.shape[0] - kernel) // stride + 1
    ow = (X.shape[1] - kernel) // stride + 1
    out_map[:] = 0.0
    feats[:] = 0.0
    # hard WTA over a multiple of 16 channels runs on vectors (model.simd)
    vectors = mode == COMP_HARD and n_ch % LANES == 0
    if pool_winner:
        cell_score[:] = -np.inf
        cell_winner[:] = -1
        cell_y[:] = 0.0
    # addresses for the per-position vector steps (see hard_position_vectors)
    # (signed: numba turns an unsigned address plus a signed offset into a float)
    dots_at, theta_at, feats_at = np.int64(dots.ctypes.data), np.int64(theta.ctypes.data), np.int64(feats.ctypes.data)
    # grid and pooling cells follow the position incrementally: no integer division per position
    for oy in range(oh):
        cy = oy * grid // oh
        qy = oy // pool
        cx = 0
        qx = 0
        in_pool = 0
        for ox in range(ow):
            if in_pool == pool:
                qx += 1
                in_pool = 0
            in_pool += 1
            while (cx + 1) * ow <= ox * grid:
                cx += 1
            p = oy * ow + ox
            nnz, norm = counts[p], norms[p]
            if norm < min_norm or nnz == 0:
                pos_active[p] = False
                continue
            pos_active[p] = True
            # the position's dot products are read in place (copied, the copy's reload waited for
            # its store on AMD Zen 4)
            # the per-position steps are inline or small helpers: one call passing the 13 arrays
            # involved cost ~110 ns per position, more than the steps themselves
            n_win = 0
            if vectors:  # hard WTA and the triangle features, 16 channels at a time, same results
                z_at, cell_at = dots_at + 4 * p * n_ch, feats_at + 4 * (cy * grid + cx) * n_ch
                if n_ch == 64:  # the MNIST presets' first layer: its four score vectors stay in registers
                    winner = hard_position_vectors(z_at, norm, theta_at, cell_at, 64, grid > 0, need_competition)
                else:
                    winner = hard_position_vectors(z_at, norm, theta_at, cell_at, n_ch, grid > 0, need_competition)
                if winner == n_ch:  # NaN scores (a zero norm with min_input_norm 0): as the scalar path
                    inv = np.float32(1.0) / norm
                    for j in range(n_ch):
                        score[j] = dots[p, j] * inv - theta[j]
                    winner = first_argmax(score)
                if need_competition:
                    n_win = 1
                    winners[0] = winner
                    y[winner] = 1.0
            elif need_competition:  # a last layer that is not learning has no use for its competition
                n_win = compete_position(dots[p], norm, theta, mode, k, temperature, score, y, winners)
            if compete_all:  # for the learner
                pos_nwin[p] = n_win
                for w in range(n_win):
                    pos_win[p, w] = winners[w]
                    pos_y[p, w] = y[winners[w]]
            if grid > 0 and not vectors:
                add_triangle_features(dots[p], feats, cy, cx)
            # emission: the competition output, max-pooled for the next layer
            if qy < out_map.shape[0] and qx < out_map.shape[1]:
                for w in range(n_win):
                    j = winners[w]
                    if pool_winner:  # the cell keeps its best-scoring winner (first one on ties)
                        score_j = dots[p, j] * (np.float32(1.0) / norm) - theta[j]  # the competition's score
                        if score_j > cell_score[qy, qx]:
                            cell_score[qy, qx] = score_j
                            cell_winner[qy, qx] = j
                            cell_y[qy, qx] = y[j]
                    else:  # branch-free: whether the cell already holds j is data-dependent
                        out_map[qy, qx, j] = max(out_map[qy, qx, j], y[j])
    if pool_winner:
        for qy in range(cell_winner.shape[0]):
            for qx in range(cell_winner.shape[1]):
                if cell_winner[qy, qx] >= 0:
                    out_map[qy, qx, cell_winner[qy, qx]] = cell_y[qy, qx]


@nb.njit(**_JIT)
def pixel_masks(X, masks):
    """Bit ``x % 32`` of ``masks[y, x // 32]`` tells whether pixel (y, x) of the dense map ``X``
    holds a non-zero value; each row ends in a spare word of zeros (see :func:`patch_row_mask`)."""
    h, w, channels = X.shape
    masks[:] = 0
    for y in range(h):
        for x in range(w):
            nonzero = False
            for c in range(channels):
                nonzero |= X[y, x, c] != 0.0
            masks[y, x >> 5] |= np.int64(nonzero) << (x & 31)


@nb.njit(inline="always", **_JIT)
def patch_row_mask(masks, y, x, kernel):
    """The non-zero pixels ``x .. x+kernel-1`` of row ``y`` as the low ``kernel`` bits (two
    32-pixel words joined, so that a patch row across a word boundary is one shift)."""
    word = x >> 5
    pair = masks[y, word] | (masks[y, word + 1] << 32)
    return (pair >> (x & 31)) & ((np.int64(1) << kernel) - 1)


@nb.njit(inline="always", **_JIT)
def masked_patch_dots(flat_x, width, channels, masks, V, s, oy, ox, kernel, stride, pair, units, dots, out):
    """:func:`dense_dot_products` of the position (oy, ox) into ``dots.flat[out:out+n_ch]`` and,
    with ``pair``, of its right neighbour (ox+1) into the next ``n_ch`` values; returns the
    patches' (nnz, norm, nnz, norm) (the second pair 0 without ``pair``).

    Neighbours share all but ``stride`` columns of their patches: one walk over the union of
    their masks serves both, with half the data-dependent loop exits (the branch mispredictions
    that bound this walk), and the rows of the patch are walked as one: each row's mask takes a
    field of 8 bits (16, 32 for wider patches) of one word, so the walk exits once per pair of
    positions, not once per row (layer 1 25.8-26.2 -> 24.1-24.8 µs per sample on AMD Zen 4).
    Columns outside a patch are skipped by a branch: adding their 0·w instead (which leaves the
    sums' bits as they are) was slower. Inlined where it is called, with ``channels`` and ``pair``
    constants where they can be (a loop over a variable channel count cost twice the arithmetic). The
    four-accumulator adds and stores are written out here and in :func:`dot_products`: shared
    through inlined helpers returning the four vectors, layer 1 took 54 instead of 32 µs per
    sample (and 37 with only the stores shared). ``units`` is the unit count as a constant where
    the caller knows it (else 0: ``len(s)``)."""
    n_ch = units if units > 0 else s.shape[0]
    y0 = oy * stride
    x0 = ox * stride
    span = kernel + stride if pair else kernel
    shift = 3 if span <= 8 else (4 if span <= 16 else 5)  # each row's bits in a field of 8, 16 or 32
    nnz_a = 0
    nnz_b = 0
    sq_a = 0.0
    sq_b = 0.0
    c0 = 0
    while c0 < n_ch:
        wide = n_ch - c0 >= 4 * LANES  # 64 channels in four vectors, else 16 in one
        a0 = vzero(); a1 = vzero(); a2 = vzero(); a3 = vzero()
        b0 = vzero(); b1 = vzero(); b2 = vzero(); b3 = vzero()
        dy0 = 0
        while dy0 < kernel:
            n_rows = min(kernel - dy0, 64 >> shift)
            m = np.int64(0)
            for r in range(n_rows):
                m |= patch_row_mask(masks, y0 + dy0 + r, x0, span) << (r << shift)
            while m != 0:
                bit = lowest_bit(m)
                m &= m - 1
                dy = dy0 + (bit >> shift)
                e = bit & ((1 << shift) - 1)  # column of the left patch; of the right one: e - stride
                base_x = ((y0 + dy) * width + x0) * channels
                base_row = dy * kernel * channels
                for c in range(channels):
                    v = flat_x[base_x + e * channels + c]
                    splat = vsplat(v)
                    if e < kernel:
                        if c0 == 0:  # the patch's norm and count, once
                            sq_a += v * v
                            nnz_a += v != 0.0
                        row = (base_row + e * channels + c) * n_ch + c0
                        a0 = vadd(a0, vmul(splat, vload(V, row)))
                        if wide:
                            a1 = vadd(a1, vmul(splat, vload(V, row + LANES)))
                            a2 = vadd(a2, vmul(splat, vload(V, row + 2 * LANES)))
                            a3 = vadd(a3, vmul(splat, vload(V, row + 3 * LANES)))
                    if pair and e >= stride:
                        if c0 == 0:
                            sq_b += v * v
                            nnz_b += v != 0.0
                        row = (base_row + (e - stride) * channels + c) * n_ch + c0
                        b0 = vadd(b0, vmul(splat, vload(V, row)))
                        if wide:
                            b1 = vadd(b1, vmul(splat, vload(V, row + LANES)))
                            b2 = vadd(b2, vmul(splat, vload(V, row + 2 * LANES)))
                            b3 = vadd(b3, vmul(splat, vload(V, row + 3 * LANES)))
            dy0 += n_rows
        for k in range(2 if pair else 1):
            at = out + k * n_ch + c0
            v0, v1, v2, v3 = (a0, a1, a2, a3) if k == 0 else (b0, b1, b2, b3)
            vstore(dots, at, vmul(v0, vload(s, c0)))
            if wide:
                vstore(dots, at + LANES, vmul(v1, vload(s, c0 + LANES)))
                vstore(dots, at + 2 * LANES, vmul(v2, vload(s, c0 + 2 * LANES)))
                vstore(dots, at + 3 * LANES, vmul(v3, vload(s, c0 + 3 * LANES)))
        c0 += 4 * LANES if wide else LANES
    return nnz_a, np.float32(np.sqrt(sq_a)), nnz_b, np.float32(np.sqrt(sq_b))


@nb.njit(**_JIT)
def dense_dot_products(X, V, s, kernel, stride, masks, idx, val, dots, norms, counts):
    """``dots[p] = s ⊙ (Vᵀ·x_p)`` for the patch of every position ``p`` of a dense few-channel input,
    summed entry by entry in patch order (``0 + v₀·w₀ + v₁·w₁ + …`` over the non-zero entries in
    (dy, dx, c) order, as :func:`gather_dense_patch` lists them; the zero channels of a non-zero
    pixel add ``±0``, which changes no sum); also ``‖x_p‖`` and the non-zero count.

    Each patch is walked through its pixel masks (:func:`pixel_masks`) rather than gathered, and
    64 channels at a time stay in four vector registers over it. (The earlier form scattered each
    pixel into the positions whose patch holds it: every add waited for the store before it.)"""
    h, w, channels = X.shape
    oh = (h - kernel) // stride + 1
    ow = (w - kernel) // stride + 1
    n_ch = V.shape[1]
    if n_ch % LANES:  # no whole vectors: each patch gathered, each channel summed on its own
        for p in range(oh * ow):
            nnz, norms[p] = gather_dense_patch(X, p // ow, p % ow, kernel, stride, idx, val)
            counts[p] = nnz
            for j in range(n_ch):
                acc = np.float32(0.0)
                for t in range(nnz):
                    acc += val[t] * V[idx[t], j]
                dots[p, j] = acc * s[j]
        return
    pixel_masks(X, masks)
    flat_x = np.ascontiguousarray(X).reshape(X.size)
    for oy in range(oh):
        for ox in range(0, ow - 1, 2):  # neighbours in pairs (see masked_patch_dots)
            p = oy * ow + ox
            if channels == 1 and kernel == 5 and stride == 1 and n_ch == 64:
                # the MNIST presets' first layer, all its sizes constants: no loop over unit
                # blocks, no per-value test of which block it is in
                counts[p], norms[p], counts[p + 1], norms[p + 1] = masked_patch_dots(
                    flat_x, w, 1, masks, V, s, oy, ox, 5, 1, True, 64, dots, p * 64)
            elif channels == 1:  # greyscale, the common case: its own code, with no channel loop
                counts[p], norms[p], counts[p + 1], norms[p + 1] = masked_patch_dots(
                    flat_x, w, 1, masks, V, s, oy, ox, kernel, stride, True, 0, dots, p * n_ch)
            else:
                counts[p], norms[p], counts[p + 1], norms[p + 1] = masked_patch_dots(
                    flat_x, w, channels, masks, V, s, oy, ox, kernel, stride, True, 0, dots, p * n_ch)
        if ow % 2:  # the last position of an odd row on its own
            p = oy * ow + ow - 1
            counts[p], norms[p], _, _ = masked_patch_dots(flat_x, w, channels, masks, V, s, oy, ow - 1, kernel, stride,
                                                          False, 0, dots, p * n_ch)


@nb.njit(inline="always", **_JIT)
def all_ones(val, nnz):
    """Whether the patch's first ``nnz`` values are all 1 (the emission of a hard-WTA layer)."""
    ones = True
    for t in range(nnz):
        ones &= val[t] == np.float32(1.0)
    return ones


@nb.njit(**_JIT)
def sparse_dot_products(X, V, s, kernel, stride, starts, chans, vals, idx, val, z, dots, norms, counts):
    """:func:`dense_dot_products` for an input with many channels (an emission map, mostly zeros):
    index its non-zeros (:func:`index_input`), then per position gather the patch's and sum their
    weight rows (:func:`dot_products`). ``dots[p]`` of a position without non-zeros is left as it
    was (nothing reads it). The gather and the sums are inlined here, in a function of their own:
    inlined into the position loop of :func:`layer_forward_sample`, numba counted references to
    their arrays with runtime calls at every position."""
    index_input(X, starts, chans, vals)
    oh = (X.shape[0] - kernel) // stride + 1
    ow = (X.shape[1] - kernel) // stride + 1
    n_ch = V.shape[1]
    for oy in range(oh):
        for ox in range(ow):
            p = oy * ow + ox
            nnz, norm = gather_patch(starts, chans, vals, X.shape[1], X.shape[2], oy, ox, kernel, stride, idx, val)
            counts[p] = nnz
            norms[p] = norm
            if nnz == 0:
                continue
            if n_ch % LANES:
                dot_products_scalar(V, s, idx, val, nnz, all_ones(val, nnz), z)
                for j in range(n_ch):
                    dots[p, j] = z[j]
            else:
                dot_products(V, s, idx, val, nnz, dots, p * n_ch)


@nb.njit(inline="always", **_JIT)
def dot_products(V, s, idx, val, nnz, out, at):
    """``out.flat[at:at+K] = s ⊙ (Vᵀ·x)`` for the sparse patch ``(idx, val)`` (``K = len(s)``, a
    multiple of 16; else :func:`dot_products_scalar`): the raw dot products ``w_j·x``.

    Rows are accumulated four at a time (a fixed association, so still bit-reproducible), and 64
    units at a time in four vector registers over the whole patch: accumulated in ``z`` instead,
    every group of rows reloaded what the group before had just stored, which AMD Zen 4 (its
    512-bit stores are two 256-bit halves) cannot forward: each reload waited for the store to
    retire. A patch of ones only (the emission of a hard-WTA layer) skips the multiplications:
    ``1·v`` is ``v`` exactly, so the sums are the same bits, ~30 % sooner."""
    n_ch = V.shape[1]
    ones = all_ones(val, nnz)
    c0 = 0
    while c0 < n_ch:
        wide = n_ch - c0 >= 4 * LANES  # 64 units in four vectors, else 16 in one
        a0 = vzero(); a1 = vzero(); a2 = vzero(); a3 = vzero()
        t = 0
        if ones:
            while t + 4 <= nnz:
                o0, o1, o2, o3 = idx[t] * n_ch + c0, idx[t + 1] * n_ch + c0, idx[t + 2] * n_ch + c0, idx[t + 3] * n_ch + c0
                a0 = vadd(a0, vadd(vadd(vload(V, o0), vload(V, o1)), vadd(vload(V, o2), vload(V, o3))))
                if wide:
                    a1 = vadd(a1, vadd(vadd(vload(V, o0 + LANES), vload(V, o1 + LANES)),
                                       vadd(vload(V, o2 + LANES), vload(V, o3 + LANES))))
                    a2 = vadd(a2, vadd(vadd(vload(V, o0 + 2 * LANES), vload(V, o1 + 2 * LANES)),
                                       vadd(vload(V, o2 + 2 * LANES), vload(V, o3 + 2 * LANES))))
                    a3 = vadd(a3, vadd(vadd(vload(V, o0 + 3 * LANES), vload(V, o1 + 3 * LANES)),
                                       vadd(vload(V, o2 + 3 * LANES), vload(V, o3 + 3 * LANES))))
                t += 4
        while t + 4 <= nnz:
            o0, o1, o2, o3 = idx[t] * n_ch + c0, idx[t + 1] * n_ch + c0, idx[t + 2] * n_ch + c0, idx[t + 3] * n_ch + c0
            v0, v1, v2, v3 = vsplat(val[t]), vsplat(val[t + 1]), vsplat(val[t + 2]), vsplat(val[t + 3])
            for k in range(4 if wide else 1):
                e = k * LANES
                part = vadd(vadd(vmul(v0, vload(V, o0 + e)), vmul(v1, vload(V, o1 + e))),
                            vadd(vmul(v2, vload(V, o2 + e)), vmul(v3, vload(V, o3 + e))))
                if k == 0:
                    a0 = vadd(a0, part)
                elif k == 1:
                    a1 = vadd(a1, part)
                elif k == 2:
                    a2 = vadd(a2, part)
                else:
                    a3 = vadd(a3, part)
            t += 4
        while t < nnz:
            o0, v0 = idx[t] * n_ch + c0, vsplat(val[t])
            a0 = vadd(a0, vmul(v0, vload(V, o0)))
            if wide:
                a1 = vadd(a1, vmul(v0, vload(V, o0 + LANES)))
                a2 = vadd(a2, vmul(v0, vload(V, o0 + 2 * LANES)))
                a3 = vadd(a3, vmul(v0, vload(V, o0 + 3 * LANES)))
            t += 1
        vstore(out, at + c0, vmul(a0, vload(s, c0)))
        if wide:
            vstore(out, at + c0 + LANES, vmul(a1, vload(s, c0 + LANES)))
            vstore(out, at + c0 + 2 * LANES, vmul(a2, vload(s, c0 + 2 * LANES)))
            vstore(out, at + c0 + 3 * LANES, vmul(a3, vload(s, c0 + 3 * LANES)))
        c0 += 4 * LANES if wide else LANES


@nb.njit(**_JIT)
def dot_products_scalar(V, s, idx, val, nnz, ones, z):
    """:func:`dot_products` unit by unit, for unit counts that are not a multiple of 16."""
    n_ch = V.shape[1]
    z[:] = 0.0
    t = 0
    if ones:
        while t + 4 <= nnz:
            r0, r1, r2, r3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
            for j in range(n_ch):
                z[j] += (V[r0, j] + V[r1, j]) + (V[r2, j] + V[r3, j])
            t += 4
    while t + 4 <= nnz:
        r0, r1, r2, r3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
        v0, v1, v2, v3 = val[t], val[t + 1], val[t + 2], val[t + 3]
        for j in range(n_ch):
            z[j] += (v0 * V[r0, j] + v1 * V[r1, j]) + (v2 * V[r2, j] + v3 * V[r3, j])
        t += 4
    while t < nnz:
        r0, v0 = idx[t], val[t]
        for j in range(n_ch):
            z[j] += v0 * V[r0, j]
        t += 1
    for j in range(n_ch):
        z[j] *= s[j]


@nb.njit(**_JIT)
def lane_sum(a):
    """Sum of a float32 vector in eight interleaved partial sums: a fixed order (bit-reproducible,
    unlike fastmath) whose independent chains the CPU overlaps instead of waiting on each add."""
    n = a.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
    m = n - n % 8
    for j in range(0, m, 8):
        a0 += a[j]
        a1 += a[j + 1]
        a2 += a[j + 2]
        a3 += a[j + 3]
        a4 += a[j + 4]
        a5 += a[j + 5]
        a6 += a[j + 6]
        a7 += a[j + 7]
    total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for j in range(m, n):
        total += a[j]
    return total


@nb.njit(**_JIT)
def first_argmax(a):
    """Index of the first maximum of a non-empty, NaN-free float32 vector (−0.0 ties with +0.0).

    One integer max over ``key(a[j])·2³² + (n−1−j)``, where ``key`` maps a float's bits to an
    integer of the same order: the largest value wins, the lowest index breaks ties. An integer
    max vectorises without fastmath; a float max followed by a search for it did not (3x slower
    over 256 scores)."""
    bits = a.view(np.int32)
    n = bits.shape[0]
    best = np.int64(-9223372036854775807) - 1
    for j in range(n):
        v = np.int64(bits[j])
        # non-negative floats order like their bits; a negative one's magnitude bits count down
        # (and −0.0, bits −2³¹, gets +0.0's key 0)
        key = v if v >= 0 else np.int64(-2147483648) - v
        best = max(best, (key << 32) | (n - 1 - j))
    return n - 1 - (best & 0xFFFFFFFF)


@nb.njit(**_JIT)
def compete_position(z, norm, theta, mode, k, temperature, score, y, winners):
    """The competition at one active position on the cosine-like scores ``w·x/‖x‖ − θ`` (into
    ``score``) from the raw dot products ``z = w·x``; returns the number of winners."""
    inv = np.float32(1.0) / norm
    for j in range(z.shape[0]):
        score[j] = z[j] * inv - theta[j]
    if mode == COMP_HARD:
        return hard_winner(score, y, winners)
    return compete_several(score, mode, k, temperature, y, winners)


@nb.njit(inline="always", **_JIT)
def hard_position_vectors(z_at, norm, theta_at, feats_at, n_ch, features, competition):
    """:func:`compete_position` (hard WTA) and :func:`add_triangle_features` for one position, 16
    channels at a time (``n_ch`` a multiple of 16): the same operations in the same order per
    value, so the same bits. Returns the winner (-1 without ``competition``; ``n_ch`` if the
    scores hold NaN: the caller then picks as the scalar path does); the features are added at
    ``feats_at``. The scores are not stored: with ``n_ch`` a constant the winner search reuses
    them from registers (nothing stored between the two loops), else it computes them again. The
    arrays come as addresses (``ctypes.data``, see :func:`model.simd.vload_at`): passed as arrays,
    each cost two runtime calls per position (~7 % of layer 1's time)."""
    inv = vsplat(np.float32(1.0) / norm)
    best = vsplat(np.float32(-np.inf))
    halves = vzero_half()
    for b in range(0, n_ch, LANES):
        zb = vload_at(z_at, b)
        if competition:
            best = vmax(best, vsub(vmul(zb, inv), vload_at(theta_at, b)))
        if features:  # lane_sum's eight partial sums take the lanes of each half in turn
            halves = vhalves_add(halves, zb)
    winner = -1
    if competition:
        m = vhmax(best)
        # the lowest matching index, without a branch per block (which block holds the maximum
        # is data-dependent: a branch on it mispredicted at most positions)
        # (the scores computed again, not stored and reloaded: a 512-bit reload of what was just
        # stored waits for the store to retire on AMD Zen 4, which stores it in two halves)
        winner = n_ch
        for b in range(0, n_ch, LANES):
            lane = vfirst_equal(vsub(vmul(vload_at(z_at, b), inv), vload_at(theta_at, b)), m)
            winner = min(winner, b + lane if lane < LANES else n_ch)
    if features:
        mean = vsplat(vtree_sum(halves) / np.float32(n_ch))
        zero = vzero()
        for b in range(0, n_ch, LANES):
            relu = vmax(vsub(vload_at(z_at, b), mean), zero)
            vstore_at(feats_at, b, vadd(vload_at(feats_at, b), relu))
    return winner


@nb.njit(**_JIT)
def add_triangle_features(z, feats, cy, cx):
    """Readout features of one position: the "triangle" code ``relu(z − mean(z))``, sum-pooled
    into grid cell ``(cy, cx)``."""
    n_ch = z.shape[0]
    mean = lane_sum(z) / np.float32(n_ch)
    for j in range(n_ch):
        feats[cy, cx, j] += max(z[j] - mean, np.float32(0.0))  # branch-free: vectorises


@nb.njit(**_JIT)
def plasticity_left(wins, consolidation):
    """Factor on a unit's learning rate and threshold steps: 1 without consolidation, else falling
    linearly from 1 to 0 as its own win count reaches ``consolidation`` (then it is consolidated)."""
    if consolidation <= 0.0:
        return 1.0
    return max(0.0, 1.0 - wins / consolidation)


@nb.njit(**_JIT)
def layer_learn_sample(X, V, s, q, theta, wins, last_win, sample_index, kernel, stride, rule,
                       lr0, lr_halflife, lr_min, homeostasis, consolidation, scratch):
    """Apply the local updates of one sample, position by position, to the winners only.

    With ``consolidation > 0`` a unit's rate and threshold steps are scaled by
    ``max(0, 1 − wins/consolidation)``: once it has won that often it is consolidated, its weights
    and threshold no longer change (it still competes and counts its wins), and a position whose
    winners are all consolidated costs nothing here.
    ``scratch`` holds the forward pass of the same sample (its competition and, for inputs with
    many channels, its index of ``X``)."""
    pos_active, pos_y, pos_win, pos_nwin = scratch.pos_active, scratch.pos_y, scratch.pos_win, scratch.pos_nwin
    starts, chans, vals, idx, val = scratch.starts, scratch.chans, scratch.vals, scratch.idx, scratch.val
    n_ch = V.shape[1]
    ow = (X.shape[1] - kernel) // stride + 1
    decay = np.float32(homeostasis / n_ch)
    n_active = 0
    for p in range(pos_active.shape[0]):
        if not pos_active[p]:
            continue
        n_active += 1
        plastic = False
        for w in range(pos_nwin[p]):
            if plasticity_left(wins[pos_win[p, w]], consolidation) > 0.0:
                plastic = True
        nnz = 0
        if plastic:
            oy = p // ow
            ox = p - oy * ow
            nnz, norm = patch_at(X, starts, chans, vals, oy, ox, kernel, stride, idx, val)
            inv = np.float32(1.0) / norm
            for t in range(nnz):
                val[t] = val[t] * inv
        best_y = np.float32(-1.0)
        best_j = -1
        for w in range(pos_nwin[p]):
            j = pos_win[p, w]
            yj = pos_y[p, w]
            left = plasticity_left(wins[j], consolidation)
            if left > 0.0:
                rate = np.float32(max(lr_min, lr0 / (1.0 + wins[j] / lr_halflife)) * left)
                if rule == RULE_INSTAR:
                    instar_update(V, s, q, j, idx, val, nnz, rate * yj)
                else:
                    oja_update(V, s, q, j, idx, val, nnz, rate * yj)
                theta[j] += np.float32(homeostasis * left) * yj
            wins[j] += yj
            if yj > best_y:
                best_y = yj
                best_j = j
            if yj >= 0.5:
                last_win[j] = sample_index
        if best_j >= 0:
            last_win[best_j] = sample_index
    # every threshold decays by h/K per active position (scaled by what plasticity the unit has
    # left); nothing reads θ during the updates, so the decay is applied once per sample
    if homeostasis > 0.0 and n_active > 0:
        total = decay * np.float32(n_active)
        for j in range(n_ch):
            theta[j] -= np.float32(total * plasticity_left(wins[j], consolidation))


# the scratch arrays of layer_forward_sample and layer_learn_sample, allocated once per chunk:
# per position (active, winners' outputs, winners, their count), the sparse index of the input
# (starts, channels, values) or for a dense input its pixel masks, per position the dot products, norms and non-zero counts,
# one patch (indices, values; GATHER_SPAN spare entries, as the index), per channel (dot products,
# scores, outputs, winners) and per pooling cell with pool_mode="winner" (best score, winner, output)
LayerScratch = namedtuple("LayerScratch", (
    "pos_active", "pos_y", "pos_win", "pos_nwin", "starts", "chans", "vals", "masks", "dots", "norms", "counts",
    "idx", "val", "z", "score", "y", "winners", "cell_score", "cell_winner", "cell_y"))


@nb.njit(**_JIT)
def forward_scratch(X, kernel, stride, n_in, n_ch, mode, k, cells):
    """A :data:`LayerScratch` for inputs shaped like ``X[0]`` (``cells``: the shape of the per-cell
    arrays, ``(0, 0)`` unless the layer pools its best winner). The vector-read arrays start at a
    cache line."""
    n_pos = ((X.shape[1] - kernel) // stride + 1) * ((X.shape[2] - kernel) // stride + 1)
    max_win = n_ch if mode == COMP_SOFT else (1 if mode == COMP_HARD else min(k, n_ch))
    n_index = X.shape[1] * X.shape[2] * X.shape[3] + GATHER_SPAN
    return LayerScratch(
        pos_active=np.zeros(n_pos, np.bool_), pos_y=np.zeros((n_pos, max_win), np.float32),
        pos_win=np.zeros((n_pos, max_win), np.int64), pos_nwin=np.zeros(n_pos, np.int64),
        starts=np.empty(X.shape[1] * X.shape[2] + 1, np.int64), chans=np.zeros(n_index, np.int64),
        vals=np.zeros(n_index, np.float32), masks=np.zeros((X.shape[1], (X.shape[2] >> 5) + 2), np.int64),
        dots=aligned_empty(n_pos * n_ch, np.float32).reshape((n_pos, n_ch)),
        norms=np.empty(n_pos, np.float32), counts=np.empty(n_pos, np.int64),
        idx=np.empty(n_in + GATHER_SPAN, np.int64), val=np.empty(n_in + GATHER_SPAN, np.float32),
        z=aligned_empty(n_ch, np.float32), score=aligned_empty(n_ch, np.float32), y=np.zeros(n_ch, np.float32),
        winners=np.empty(n_ch, np.int64), cell_score=np.empty(cells, np.float32),
        cell_winner=np.empty(cells, np.int64), cell_y=np.empty(cells, np.float32))


@nb.njit(**_JIT)
def layer_learn_chunk(X, V, s, q, theta, wins, last_win, sample0, kernel, stride, pool, grid, mode, k,
                      temperature, min_norm, pool_winner, rule, lr0, lr_halflife, lr_min, homeostasis, consolidation,
                      out_maps, feats, scratch):
    """Run samples ``X[n]`` through one layer in order: forward (prequential), then learn.
    ``scratch`` is :func:`forward_scratch`'s, kept alive by the caller."""
    # unowned views (model.nrt): the caller's references keep the arrays alive during the call
    X, V, s, q, theta, wins, last_win, out_maps, feats = unowned((X, V, s, q, theta, wins, last_win, out_maps, feats))
    scratch = unowned(scratch)
    for n in range(X.shape[0]):
        layer_forward_sample(X[n], V, s, theta, kernel, stride, pool, grid, mode, k, temperature,
                             min_norm, pool_winner, out_maps[n], feats[n], scratch, True)
        layer_learn_sample(X[n], V, s, q, theta, wins, last_win, sample0 + n, kernel, stride, rule,
                           lr0, lr_halflife, lr_min, homeostasis, consolidation, scratch)


@nb.njit(**_JIT)
def layer_forward_chunk(X, V, s, theta, kernel, stride, pool, grid, mode, k, temperature, min_norm, pool_winner,
                        out_maps, feats, scratch):
    """Forward samples ``X[n]`` through one layer with frozen weights (callers run several
    chunks on threads at once: the kernel holds no GIL and writes only its own outputs).
    ``scratch`` is :func:`forward_scratch`'s, kept alive by the caller."""
    # unowned views (model.nrt): shared by the threads, the weights' reference counts would be
    # contended atomics; the caller's references keep the arrays alive during the call
    X, V, s, theta, out_maps, feats = unowned((X, V, s, theta, out_maps, feats))
    scratch = unowned(scratch)
    for n in range(X.shape[0]):
        layer_forward_sample(X[n], V, s, theta, kernel, stride, pool, grid, mode, k, temperature,
                             min_norm, pool_winner, out_maps[n], feats[n], scratch, False)


@nb.njit(**_JIT)
def readout_scores(F, W, out):
    """``out[n] = F[n] @ W`` for the feature-major, C-contiguous weights ``W[d, classes]``.

    Classes share a vector (sixteen per pass; ``W``'s rows copied into 16-wide rows first, one
    vector load and store each: the lanes past the last class hold the next row's values, which
    no stored score reads, and only the last rows, which would read past ``W``'s end, are copied
    value by value and zero-padded), and four samples go together, so each weight vector is loaded
    once for four samples; each sample's features are read in place, in order. Per sample and
    class the order is fixed: features of even index summed in order, those of odd index
    likewise, then the two sums added (float32 products and sums, no fused multiply-add). A
    sample's scores therefore do not depend on the batch it is scored in. (The former layout,
    samples in the lanes, first copied every feature of sixteen samples into lane order one value
    at a time: 4.5 µs per sample for 3,073 features and ten classes on AMD Zen 4, against ~1.2 µs
    now. Reading ``W``'s rows in place in the loop below instead of copying them was 7x slower.)"""
    n, d = F.shape
    n_cls = W.shape[1]
    rows = aligned_empty(d * LANES, np.float32)
    lanes = aligned_empty(LANES, np.float32)
    pairs = d // 2
    for c0 in range(0, n_cls, LANES):
        width = min(LANES, n_cls - c0)
        direct = d  # rows whose 16 values from column c0 on lie inside W
        while direct > 0 and (direct - 1) * n_cls + c0 + LANES > d * n_cls:
            direct -= 1
        for i in range(direct):
            vstore(rows, i * LANES, vload(W, i * n_cls + c0))
        for i in range(direct, d):
            for c in range(LANES):
                rows[i * LANES + c] = W[i, c0 + c] if c < width else np.float32(0.0)
        n0 = 0
        while n0 + 4 <= n:
            e0 = vzero(); e1 = vzero(); e2 = vzero(); e3 = vzero()
            o0 = vzero(); o1 = vzero(); o2 = vzero(); o3 = vzero()
            for i in range(pairs):
                even = vload(rows, 2 * i * LANES)
                odd = vload(rows, (2 * i + 1) * LANES)
                e0 = vadd(e0, vmul(vsplat(F[n0, 2 * i]), even))
                e1 = vadd(e1, vmul(vsplat(F[n0 + 1, 2 * i]), even))
                e2 = vadd(e2, vmul(vsplat(F[n0 + 2, 2 * i]), even))
                e3 = vadd(e3, vmul(vsplat(F[n0 + 3, 2 * i]), even))
                o0 = vadd(o0, vmul(vsplat(F[n0, 2 * i + 1]), odd))
                o1 = vadd(o1, vmul(vsplat(F[n0 + 1, 2 * i + 1]), odd))
                o2 = vadd(o2, vmul(vsplat(F[n0 + 2, 2 * i + 1]), odd))
                o3 = vadd(o3, vmul(vsplat(F[n0 + 3, 2 * i + 1]), odd))
            if d % 2:
                last = vload(rows, (d - 1) * LANES)
                e0 = vadd(e0, vmul(vsplat(F[n0, d - 1]), last))
                e1 = vadd(e1, vmul(vsplat(F[n0 + 1, d - 1]), last))
                e2 = vadd(e2, vmul(vsplat(F[n0 + 2, d - 1]), last))
                e3 = vadd(e3, vmul(vsplat(F[n0 + 3, d - 1]), last))
            for g in range(4):
                vstore(lanes, 0, vadd(e0, o0) if g == 0 else vadd(e1, o1) if g == 1 else
                       vadd(e2, o2) if g == 2 else vadd(e3, o3))
                for c in range(width):
                    out[n0 + g, c0 + c] = lanes[c]
            n0 += 4
        while n0 < n:  # the last samples one at a time: the same sums
            e0 = vzero()
            o0 = vzero()
            for i in range(pairs):
                e0 = vadd(e0, vmul(vsplat(F[n0, 2 * i]), vload(rows, 2 * i * LANES)))
                o0 = vadd(o0, vmul(vsplat(F[n0, 2 * i + 1]), vload(rows, (2 * i + 1) * LANES)))
            if d % 2:
                e0 = vadd(e0, vmul(vsplat(F[n0, d - 1]), vload(rows, (d - 1) * LANES)))
            vstore(lanes, 0, vadd(e0, o0))
            for c in range(width):
                out[n0, c0 + c] = lanes[c]
            n0 += 1


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
