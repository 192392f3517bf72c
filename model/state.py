"""Versioned, pickle-free network state: a dict of JSON-able metadata plus named numpy arrays,
and a binary encoding of it (used by checkpoints) with a checksum."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import numpy as np

from model.config import NetworkConfig

STATE_FORMAT = "hebb-network"
STATE_VERSION = 2  # 2: packed Gram triangle, serving states
_MAGIC = b"HEBBSTAT"
_DIGEST_SIZE = hashlib.sha256().digest_size


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
        h.update(_bytes_view(a))  # hashed in place: no copy, and hashlib releases the GIL
    return h.hexdigest()


def encode_state(state: dict) -> bytes:
    """Binary form: magic, header length, JSON header, raw arrays, sha256 of all that precedes it."""
    return encode_state_buffer(state).tobytes()


def encode_state_buffer(state: dict) -> np.ndarray:
    """:func:`encode_state` as a ``uint8`` array, built without holding the GIL (``bytes`` of it
    would be one more copy that holds it: pass this to what accepts any buffer)."""
    arrays = {name: np.ascontiguousarray(a) for name, a in state["arrays"].items()}
    meta = {k: v for k, v in state.items() if k != "arrays"}
    names = sorted(arrays)
    layout = []
    offset = 0
    for name in names:
        a = arrays[name]
        layout.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "nbytes": a.nbytes})
        offset += a.nbytes
    header = json.dumps({"meta": meta, "arrays": layout}, sort_keys=True).encode()
    return join_with_checksum([_MAGIC + struct.pack("<Q", len(header)) + header, *(arrays[name] for name in names)],
                              lambda payload: hashlib.sha256(payload).digest())


def _bytes_view(data) -> memoryview:
    """The raw bytes of a bytes-like object or a contiguous array, without copying them."""
    return memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).cast("B")


def join_buffers(parts: list) -> np.ndarray:
    """Concatenate bytes-like objects and arrays (their raw bytes) into one new ``uint8`` array.

    A checkpoint is tens of MB: joined with ``+``/``BytesIO``/``tobytes`` its copies held the GIL
    for tens of ms each and stalled every request the service was answering meanwhile; numpy's
    copies release it. Call ``.tobytes()`` on the result for ``bytes`` (one more copy)."""
    views = [np.frombuffer(_bytes_view(part), np.uint8) for part in parts]
    out = np.empty(sum(v.size for v in views), np.uint8)
    offset = 0
    for view in views:
        out[offset:offset + view.size] = view
        offset += view.size
    return out


def join_with_checksum(parts: list, checksum) -> np.ndarray:
    """:func:`join_buffers` of ``parts`` followed by ``checksum(joined bytes)`` (a function returning
    ``bytes`` of a fixed length, e.g. a sha256 digest), in the same buffer: appending it afterwards
    would copy everything once more."""
    size = len(checksum(b""))
    blob = join_buffers([*parts, bytes(size)])  # the last bytes: the checksum's place
    blob[-size:] = np.frombuffer(checksum(blob[:-size]), np.uint8)
    return blob


def decode_state(blob: bytes) -> dict:
    """Inverse of :func:`encode_state`; raises :class:`StateError` on any corruption."""
    view = memoryview(blob).cast("B")  # sliced without copies, hashed without the GIL (see join_buffers)
    if len(view) < len(_MAGIC) + 8 + _DIGEST_SIZE or bytes(view[:len(_MAGIC)]) != _MAGIC:
        raise StateError("not a Hebb state blob")
    payload, checksum = view[:-_DIGEST_SIZE], bytes(view[-_DIGEST_SIZE:])
    if hashlib.sha256(payload).digest() != checksum:
        raise StateError("state blob checksum mismatch (corrupt)")
    (header_len,) = struct.unpack("<Q", payload[len(_MAGIC):len(_MAGIC) + 8])
    start = len(_MAGIC) + 8
    header = json.loads(bytes(payload[start:start + header_len]))
    body = payload[start + header_len:]
    arrays = {}
    for item in header["arrays"]:
        raw = body[item["offset"]:item["offset"] + item["nbytes"]]
        arrays[item["name"]] = np.frombuffer(raw, dtype=np.dtype(item["dtype"])).reshape(item["shape"]).copy()
    state: dict[str, Any] = dict(header["meta"])
    state["arrays"] = arrays
    return state
