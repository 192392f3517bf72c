"""Turning request values into the uint8 pixel rows the service learns and predicts from.

The service works on uint8 pixels throughout so that what is logged, learned, stored for feedback
and replayed after a restart is the same bytes: integers are 0–255 pixels; if any value of a sample
is a non-integer number, the sample is read as floats in [0, 1] and quantised to ``round(255·x)``.
Every error names the offending field.
"""

from __future__ import annotations

import binascii
from typing import Sequence

import numpy as np

from service.errors import InvalidInput


def pixels_from_values(values: Sequence[int | float] | np.ndarray, size: int, field: str) -> np.ndarray:
    """One sample from a flat list of numbers → ``uint8[size]``.

    >>> pixels_from_values([0, 255, 128], 3, "x").tolist()
    [0, 255, 128]
    >>> pixels_from_values([0.0, 1.0, 0.5], 3, "x").tolist()
    [0, 255, 128]
    >>> pixels_from_values([0, 300, 1], 3, "samples[0].x")
    Traceback (most recent call last):
    ...
    service.errors.InvalidInput: samples[0].x: integer pixels must lie in [0, 255]
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{field}: must be a flat list of numbers ({exc})", field) from exc
    if arr.ndim != 1 or arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise InvalidInput(f"{field}: must be a flat list of numbers", field)
    return _quantise(arr, size, field)


def pixels_from_array(arr: np.ndarray, size: int, field: str, *, floats: bool) -> np.ndarray:
    """Many samples from an ``[N, ...]`` numeric array → ``uint8[N, size]`` (used by OIP v2)."""
    if arr.ndim < 1:
        raise InvalidInput(f"{field}: expected a batch of samples", field)
    rows = arr.reshape(len(arr), -1)
    if rows.shape[1] != size:
        raise InvalidInput(f"{field}: each sample must have {size} values, got {rows.shape[1]}", field)
    if floats:
        rows = rows.astype(np.float64, copy=False)
    return _quantise(rows, size, field)


def _quantise(arr: np.ndarray, size: int, field: str) -> np.ndarray:
    if arr.shape[-1] != size:
        raise InvalidInput(f"{field}: must have {size} values, got {arr.shape[-1]}", field)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise InvalidInput(f"{field}: integer pixels must lie in [0, 255]", field)
        return arr.astype(np.uint8)
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{field}: values must be finite", field)
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise InvalidInput(f"{field}: float values must lie in [0, 1] (send integers for 0-255 pixels)", field)
    return np.rint(arr * 255.0).astype(np.uint8)


def pixels_from_b64(text: str, size: int, field: str) -> np.ndarray:
    """One sample from base64 of its uint8 pixels → ``uint8[size]``.

    >>> import base64
    >>> pixels_from_b64(base64.b64encode(bytes([1, 2, 3])).decode(), 3, "x_b64").tolist()
    [1, 2, 3]
    """
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field}: not valid base64 ({exc})", field) from exc
    if len(raw) != size:
        raise InvalidInput(f"{field}: must decode to {size} bytes (one uint8 per pixel), got {len(raw)}", field)
    return np.frombuffer(raw, np.uint8)


def sample_pixels(x, x_b64, size: int, field: str) -> np.ndarray:
    """Exactly one of ``x`` / ``x_b64`` → ``uint8[size]``; ``field`` is the sample's path."""
    if (x is None) == (x_b64 is None):
        raise InvalidInput(f"{field}: give exactly one of 'x' or 'x_b64'", field)
    if x_b64 is not None:
        return pixels_from_b64(x_b64, size, f"{field}.x_b64")
    return pixels_from_values(x, size, f"{field}.x")


def check_label(label, classes: int, field: str) -> int:
    """``None``/-1 → -1 (unlabeled); otherwise an int in [0, classes)."""
    if label is None:
        return -1
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise InvalidInput(f"{field}: must be an integer class or null", field)
    if label == -1:
        return -1
    if not 0 <= label < classes:
        raise InvalidInput(f"{field}: {label} is out of range [0, {classes})", field)
    return int(label)
