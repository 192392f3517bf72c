"""numpy → request payloads. Every sample travels as compact ``x_b64`` (base64 of its uint8 pixels,
~1.3 bytes per pixel). The service learns from uint8 pixels throughout, reading float inputs in
[0, 1] as ``round(255·x)``; the SDK applies that same rule before sending, so floats cost no more
bandwidth than pixels and are learned exactly as if sent as numbers."""

from __future__ import annotations

import base64
import uuid
from typing import Any, Sequence

import numpy as np

from ._exceptions import InvalidInput


def as_sample_rows(X: Any) -> np.ndarray:
    """One flat row per sample. A 1-D array is one flat sample; otherwise axis 0 is the batch."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"X must be a numeric array: {exc}") from exc
    if arr.ndim == 0:
        raise InvalidInput("X must be an array of samples, got a scalar")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.dtype.kind not in "uif" or arr.dtype == np.bool_:
        raise InvalidInput(f"X must hold uint8 pixels or floats in [0, 1], got dtype {arr.dtype}")
    rows = arr.reshape(len(arr), int(np.prod(arr.shape[1:])))  # -1 cannot be inferred for 0 samples
    if rows.dtype == np.uint8:
        return rows
    if rows.dtype.kind in "ui":
        if rows.size and (rows.min() < 0 or rows.max() > 255):
            raise InvalidInput("integer pixels must lie in 0..255")
        return rows.astype(np.uint8)
    if not np.all(np.isfinite(rows)):
        raise InvalidInput("X contains NaN or infinite values")
    if rows.size and (rows.min() < 0.0 or rows.max() > 1.0):
        raise InvalidInput("float samples must lie in [0, 1] (pass uint8 or integer arrays for 0-255 pixels)")
    return np.rint(rows.astype(np.float64) * 255.0).astype(np.uint8)


def encode_input(row: np.ndarray) -> dict[str, Any]:
    return {"x_b64": base64.b64encode(np.ascontiguousarray(row).tobytes()).decode("ascii")}


def as_label_list(y: Any, n: int) -> list[int | None]:
    """Labels as ints, with None for unlabeled samples (given as None or -1)."""
    if y is None:
        return [None] * n
    items = y.tolist() if isinstance(y, np.ndarray) else list(y)
    if len(items) != n:
        raise InvalidInput(f"got {len(items)} labels for {n} samples")
    out: list[int | None] = []
    for i, label in enumerate(items):
        if label is None or (isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label == -1):
            out.append(None)
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
            out.append(int(label))
        else:
            raise InvalidInput(f"label {i} must be a non-negative integer, -1 or None; got {label!r}")
    return out


def sample_ids(ids: Sequence[str] | None, n: int) -> list[str]:
    """The caller's ids, or fresh ones: a random prefix per call plus the sample's index. The ids
    are fixed before the first request, so a retried batch carries the same ids and the server
    recognises samples it has already learned."""
    if ids is None:
        prefix = uuid.uuid4().hex
        return [f"{prefix}-{i}" for i in range(n)]
    out = [str(i) for i in ids]
    if len(out) != n:
        raise InvalidInput(f"got {len(out)} ids for {n} samples")
    if len(set(out)) != n:
        raise InvalidInput("sample ids must be unique within a call")
    return out
