"""Pictures of what the network learned: receptive-field grids and learning curves (PNG)."""

from __future__ import annotations

import io
import math

import numpy as np
import scipy.sparse


def filter_grid(weights: np.ndarray, kernel: int, channels_in: int = 1, pad: int = 1, zoom: int = 4) -> np.ndarray:
    """Tile a layer's filters (``float32[n_in, K]``) into one greyscale image in [0, 1].

    Each filter is min-max scaled on its own; multi-channel inputs are averaged over channels.

    >>> filter_grid(np.eye(4, dtype=np.float32), kernel=2, zoom=1).shape  # 2x2 grid of 2x2 filters, 1px gaps
    (5, 5)
    """
    n_in, k = weights.shape
    filters = weights.T.reshape(k, kernel, kernel, channels_in).mean(axis=3)
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    cell = kernel + pad
    grid = np.ones((rows * cell - pad, cols * cell - pad), np.float32)
    for i, f in enumerate(filters):
        lo, hi = float(f.min()), float(f.max())
        f = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
        r, c = divmod(i, cols)
        grid[r * cell:r * cell + kernel, c * cell:c * cell + kernel] = f
    return np.kron(grid, np.ones((zoom, zoom), np.float32)) if zoom > 1 else grid


def png_bytes(image: np.ndarray, cmap: str = "gray") -> bytes:
    """Encode a 2-D array in [0, 1] as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, image, cmap=cmap, vmin=0.0, vmax=1.0, format="png")
    return buf.getvalue()


def layer1_filters_png(net) -> bytes:
    layer = net.layers[0]
    return png_bytes(filter_grid(layer.weights, layer.config.kernel, layer.input_shape[2]))


def save_curve(path, curves: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str, ylabel: str, title: str,
               ylim: tuple[float, float] | None = None) -> None:
    """Plot one or more (x, y) curves into a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label, linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------- top-layer units
def receptive_field(net) -> tuple[int, int]:
    """(size, step) in input pixels of one top-layer position: its patch of the input image is
    ``[o·step, o·step + size)`` on each axis. Walks the layers down (kernel, stride, then the
    previous layer's max-pool).

    >>> from model import Network
    >>> receptive_field(Network("mnist"))       # 3x3 over 2x2-pooled 3x3 over 3x3-pooled 5x5 fields
    (28, 6)
    >>> receptive_field(Network("mnist-fine"))  # the same over 2x2-pooled 5x5 fields
    (20, 4)
    >>> receptive_field(Network("mnist-shallow"))
    (5, 1)
    """
    size, step = 1, 1
    for i in range(len(net.layers) - 1, -1, -1):
        cfg = net.layers[i].config
        if i < len(net.layers) - 1:          # this layer's emission is max-pooled before the next layer
            size, step = size * cfg.pool, step * cfg.pool
        size, step = (size - 1) * cfg.stride + cfg.kernel, step * cfg.stride
    return size, step


def top_layer_winners(net, X, snapshot=None) -> np.ndarray:
    """For each sample and each position of the top layer, the unit that wins the competition there
    (``int64[N, OH, OW]``, -1 where the patch is inactive). Pure forward pass: nothing learns.

    The layers below run through the engine's forward kernels (on ``snapshot``'s frozen weights
    when given, so this may run on any thread while the model learns); the top layer is scored in
    numpy exactly as the kernels do — ``(w_j · x/‖x‖) − θ_j``, patches under ``min_input_norm``
    inactive — and the strongest unit is taken (the winner under hard competition, the first of
    the k winners under k-WTA).
    """
    from model.rules.scaled import effective_weights
    from model.validation import as_sample_batch

    h = as_sample_batch(X, net.config.input_shape)
    frozen = snapshot.layers if snapshot is not None else [layer.frozen() for layer in net.layers]
    for layer, state in zip(net.layers[:-1], frozen[:-1]):
        h, _ = layer.forward(h, state)
    top = net.layers[-1]
    vectors, scales, thresholds = frozen[-1]
    W = effective_weights(vectors, scales)
    k, s = top.config.kernel, top.config.stride
    P = _all_patches(h, k, s)                                    # [N, OH, OW, n_in], (dy, dx, c) order
    norms = np.sqrt(np.einsum("...i,...i->...", P, P, dtype=np.float64)).astype(np.float32)
    active = (norms >= top.config.min_input_norm) & (norms > 0)
    scores = (P.reshape(-1, top.n_in) @ W) / np.where(active, norms, 1).reshape(-1, 1) - thresholds
    winners = scores.argmax(axis=1).reshape(norms.shape).astype(np.int64)
    winners[~active] = -1
    return winners


def _all_patches(maps: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Every ``kernel``-sided patch of ``[N, H, W, C]`` maps at ``stride`` as ``[N, OH, OW, kernel·kernel·C]``
    in (dy, dx, c) order (the kernels' patch layout)."""
    view = np.lib.stride_tricks.sliding_window_view(maps, (kernel, kernel), axis=(1, 2))[:, ::stride, ::stride]
    n, oh, ow, c = view.shape[:4]
    return np.ascontiguousarray(view.transpose(0, 1, 2, 4, 5, 3)).reshape(n, oh, ow, kernel * kernel * c)


def unit_preferred_inputs(net, X, snapshot=None) -> tuple[np.ndarray, np.ndarray]:
    """What each top-layer unit responds to: the average input patch over every (sample, position)
    where the unit wins, for the samples ``X`` (e.g. a buffer of recent inputs).

    Returns ``(means float32[K, size, size, C] in [0, 1], counts int64[K])``; a unit that never won
    has a zero mean and count 0. ``size`` is the top layer's receptive field in input pixels.
    """
    from model.validation import as_sample_batch

    images = as_sample_batch(X, net.config.input_shape)
    size, step = receptive_field(net)
    channels = net.config.input_shape[2]
    units = net.layers[-1].config.channels
    if len(images) == 0:
        return np.zeros((units, size, size, channels), np.float32), np.zeros(units, np.int64)
    winners = top_layer_winners(net, images, snapshot)
    _, oh, ow = winners.shape
    winners = winners.reshape(-1)
    hit = np.flatnonzero(winners >= 0)
    # every (sample, position) input patch, then one sparse product sums them per winning unit
    windows = _all_patches(images, size, step)[:, :oh, :ow].reshape(-1, size * size * channels)
    assign = scipy.sparse.csr_matrix((np.ones(len(hit)), (winners[hit], hit)), shape=(units, len(winners)))
    sums = np.asarray(assign @ windows, np.float64).reshape(units, size, size, channels)
    counts = np.bincount(winners[hit], minlength=units).astype(np.int64)
    means = sums / np.maximum(counts, 1)[:, None, None, None]
    return means.astype(np.float32), counts


def patch_grid(patches: np.ndarray, pad: int = 1, zoom: int = 3, empty: float = 0.15) -> np.ndarray:
    """Tile ``[K, size, size, C]`` patches (values in [0, 1], channel-averaged) into one image, each
    min-max scaled on its own; all-zero patches (units that never won) are drawn flat ``empty``.

    >>> patch_grid(np.zeros((5, 2, 2, 1)), zoom=1).shape   # 3 columns x 2 rows of 2x2, 1px gaps
    (5, 8)
    """
    k, size = patches.shape[0], patches.shape[1]
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    cell = size + pad
    grid = np.full((rows * cell - pad, cols * cell - pad), 0.5, np.float32)   # mid-grey gaps
    for i, p in enumerate(patches.mean(axis=3)):
        lo, hi = float(p.min()), float(p.max())
        p = (p - lo) / (hi - lo) if hi > lo else np.full_like(p, empty if hi == 0 else 0.5)
        r, c = divmod(i, cols)
        grid[r * cell:r * cell + size, c * cell:c * cell + size] = p
    return np.kron(grid, np.ones((zoom, zoom), np.float32)) if zoom > 1 else grid


def layer_filters_png(net, snapshot=None, layer: int = 0) -> bytes:
    """A layer's receptive fields as PNG, from ``snapshot``'s frozen weights when given (so it can be
    drawn while the model learns)."""
    from model.rules.scaled import effective_weights

    target = net.layers[layer]
    weights = effective_weights(*snapshot.layers[layer][:2]) if snapshot is not None else target.weights
    return png_bytes(filter_grid(weights, target.config.kernel, target.input_shape[2]))


def unit_preferred_inputs_png(net, X, snapshot=None) -> bytes:
    means, _ = unit_preferred_inputs(net, X, snapshot)
    return png_bytes(patch_grid(means))
