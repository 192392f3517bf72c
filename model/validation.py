"""Input checks: every sample and label is validated before anything is learned, so a bad input
raises a clear ``ValueError`` and leaves the network untouched."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_sample_batch(X: Any, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Return ``float32[N, H, W, C]`` in [0, 1] from uint8 pixels or floats in [0, 1].

    Each sample may be given flat (H·W·C values), as (H, W) when C == 1, or as (H, W, C).

    >>> as_sample_batch(np.zeros((2, 784), np.uint8), (28, 28, 1)).shape
    (2, 28, 28, 1)
    >>> as_sample_batch(np.zeros((1, 5)), (28, 28, 1))
    Traceback (most recent call last):
    ...
    ValueError: each sample must have 784 values (shape (28, 28, 1)); got shape (5,)
    """
    return samples_as_float(checked_samples(X, input_shape))


def checked_samples(X: Any, input_shape: tuple[int, int, int]) -> np.ndarray:
    """The checks of :func:`as_sample_batch` without its conversion: the samples as given (uint8
    or float), viewed as ``[N, H, W, C]``. Batched prediction converts block by block, on the
    threads that predict (a single conversion of 10,000 images ahead of them took ~5 ms that no
    other work overlapped)."""
    if isinstance(X, np.ndarray):
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"samples must be a numeric array: {exc}") from exc
    h, w, c = input_shape
    size = h * w * c
    if arr.ndim == 0:
        raise ValueError("samples must be an array of samples, got a scalar")
    sample_shape = arr.shape[1:]
    allowed = {(size,), (h, w, c)} | ({(h, w)} if c == 1 else set())
    if sample_shape not in allowed:
        raise ValueError(f"each sample must have {size} values (shape {input_shape}); got shape {sample_shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError("samples contain NaN or infinite values")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ValueError("float samples must lie in [0, 1] (send uint8 pixels for 0-255)")
    elif arr.dtype != np.uint8:
        raise ValueError(f"samples must be uint8 pixels or floats in [0, 1], got dtype {arr.dtype}")
    return arr.reshape(len(arr), h, w, c)


def samples_as_float(samples: np.ndarray) -> np.ndarray:
    """A ``float32``, C-contiguous copy in [0, 1] of samples :func:`checked_samples` accepted
    (uint8 pixels divided by 255 in float32, in one pass)."""
    if samples.dtype == np.uint8:
        return np.true_divide(samples, np.float32(255.0), dtype=np.float32)
    return np.array(samples, dtype=np.float32, order="C")  # a copy: the caller's array may change


def as_label_array(y: Any, n: int, classes: int) -> np.ndarray:
    """Return ``int64[n]`` labels with -1 for unlabeled samples (``None`` or ``-1``)."""
    if y is None:
        return np.full(n, -1, np.int64)
    items = list(y) if not isinstance(y, np.ndarray) else y.tolist()
    if len(items) != n:
        raise ValueError(f"got {len(items)} labels for {n} samples")
    out = np.empty(n, np.int64)
    for i, label in enumerate(items):
        if label is None:
            out[i] = -1
            continue
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"label {i} must be an integer class or None, got {label!r}")
        if label == -1:
            out[i] = -1
        elif not 0 <= label < classes:
            raise ValueError(f"label {i}={label} is out of range [0, {classes})")
        else:
            out[i] = label
    return out
