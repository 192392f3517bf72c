"""Versioned, pickle-free network state: a dict of JSON-able metadata plus named numpy arrays,
and a binary encoding of it (used by checkpoints) with a checksum."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from typing import Any

import numpy as np

from model.config import NetworkConfig

STATE_FORMAT = "hebb-network"
STATE_VERSION = 2  # 2: packed Gram triangle, serving states
_MAGIC = b"HEBBSTAT"


class StateError(ValueError):
    """A state that cannot be loaded: wrong format, version, config or arrays."""


def pack_state(config: NetworkConfig, preset: str | None, seed: int, counters: dict, arrays: dict[str, np.ndarray],
               serving: bool = False) -> dict:
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "serving": serving,
        "config": config.model_dump(mode="json"),
        "config_digest": config.digest(),
        "preset": preset,
        "seed": seed,
        "counters": json.loads(json.dumps(counters)),
        "arrays": {name: np.array(a, copy=True) for name, a in arrays.items()},
    }


def load_state(state: dict) -> tuple[NetworkConfig, str | None, int, dict, dict[str, np.ndarray]]:
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError("not a Hebb network state")
    if state.get("version") != STATE_VERSION:
        raise StateError(f"state version {state.get('version')} is not supported (expected {STATE_VERSION})")
    try:
        config = NetworkConfig.model_validate(state["config"])
    except Exception as exc:  # pydantic's message names the field
        raise StateError(f"state config is invalid: {exc}") from exc
    if state.get("config_digest") != config.digest():
        raise StateError("state config digest does not match its config")
    return config, state.get("preset"), int(state["seed"]), state["counters"], state["arrays"]


def digest_state(counters: dict, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(counters, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def encode_state(state: dict) -> bytes:
    """Binary form: magic, header length, JSON header, raw arrays, sha256 of all that precedes it."""
    arrays = state["arrays"]
    meta = {k: v for k, v in state.items() if k != "arrays"}
    layout = []
    body = io.BytesIO()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        layout.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "offset": body.tell(), "nbytes": a.nbytes})
        body.write(a.tobytes())
    header = json.dumps({"meta": meta, "arrays": layout}, sort_keys=True).encode()
    blob = _MAGIC + struct.pack("<Q", len(header)) + header + body.getvalue()
    return blob + hashlib.sha256(blob).digest()


def decode_state(blob: bytes) -> dict:
    """Inverse of :func:`encode_state`; raises :class:`StateError` on any corruption."""
    if len(blob) < len(_MAGIC) + 8 + 32 or not blob.startswith(_MAGIC):
        raise StateError("not a Hebb state blob")
    payload, checksum = blob[:-32], blob[-32:]
    if hashlib.sha256(payload).digest() != checksum:
        raise StateError("state blob checksum mismatch (corrupt)")
    (header_len,) = struct.unpack("<Q", payload[len(_MAGIC):len(_MAGIC) + 8])
    start = len(_MAGIC) + 8
    header = json.loads(payload[start:start + header_len])
    body = memoryview(payload)[start + header_len:]
    arrays = {}
    for item in header["arrays"]:
        raw = body[item["offset"]:item["offset"] + item["nbytes"]]
        arrays[item["name"]] = np.frombuffer(raw, dtype=np.dtype(item["dtype"])).reshape(item["shape"]).copy()
    state: dict[str, Any] = dict(header["meta"])
    state["arrays"] = arrays
    return state
