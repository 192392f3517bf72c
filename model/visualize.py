"""Pictures of what the network learned: receptive-field grids and learning curves (PNG)."""

from __future__ import annotations

import io
import math

import numpy as np


def filter_grid(weights: np.ndarray, kernel: int, channels_in: int = 1, pad: int = 1, zoom: int = 4) -> np.ndarray:
    """Tile a layer's filters (``float32[n_in, K]``) into one greyscale image in [0, 1].

    Each filter is min-max scaled on its own; multi-channel inputs are averaged over channels.

    >>> filter_grid(np.eye(4, dtype=np.float32), kernel=2, zoom=1).shape
    (7, 7)
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
