"""Binary, pickle-free formats of what the service makes durable.

*Log events* — one per accepted learn or feedback request, appended to the store's log before the
request is acknowledged. Replay is ``decode_event`` + ``Network.learn_many(event.pixels, event.labels)``
+ remembering ``event.ids`` (see ``ModelManager.replay``)::

    b"HEBE" | version u8 | kind u8 | header length u32 | JSON header | uint8 pixels | crc32 u32

The JSON header holds ``n``, ``size`` (values per sample), ``ids`` (str or null per sample),
``labels`` (int per sample, -1 = unlabeled) and, for feedback, ``prediction_id``.

*Checkpoint payloads* — the network state (``model.encode_state``) plus the service-level state that
must survive a restart with it: the seen sample ids (idempotent retries) and the log position::

    b"HEBC" | version u8 | header length u32 | JSON header | network state blob | crc32 u32

>>> import numpy as np
>>> ev = LearnEvent(kind=EventKind.LEARN, ids=["a", None], pixels=np.zeros((2, 784), np.uint8), labels=[3, -1])
>>> back = decode_event(encode_event(ev))
>>> back.ids, back.labels, back.pixels.shape
(['a', None], [3, -1], (2, 784))
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.state import join_with_checksum

EVENT_MAGIC = b"HEBE"
EVENT_VERSION = 1
CHECKPOINT_MAGIC = b"HEBC"
CHECKPOINT_VERSION = 1
_HEAD = struct.Struct("<4sBBI")        # magic, version, kind, header length
_CKPT_HEAD = struct.Struct("<4sBI")    # magic, version, header length
_CRC = struct.Struct("<I")


class EventError(ValueError):
    """An event or checkpoint payload that cannot be decoded (corrupt, truncated, wrong version)."""


class UnsupportedFormat(EventError):
    """An intact payload of another format version: never loaded as if it were this one."""


class EventKind(enum.IntEnum):
    LEARN = 1       # samples posted to /samples
    FEEDBACK = 2    # a delayed label for a stored prediction: one sample, id "feedback:<prediction_id>"


def feedback_sample_id(prediction_id: str) -> str:
    """The sample id a feedback event learns under, so a feedback is applied at most once."""
    return f"feedback:{prediction_id}"


@dataclass
class LearnEvent:
    kind: EventKind
    ids: list[str | None]
    pixels: np.ndarray                  # uint8 [n, size]
    labels: list[int]                   # -1 = unlabeled
    prediction_id: str | None = None    # set for FEEDBACK

    def __post_init__(self):
        self.pixels = np.ascontiguousarray(self.pixels, dtype=np.uint8).reshape(len(self.ids), -1)
        if len(self.labels) != len(self.ids):
            raise ValueError("an event needs one label per sample")

    def __len__(self) -> int:
        return len(self.ids)


def encode_event(event: LearnEvent) -> bytes:
    header = {"n": len(event), "size": int(event.pixels.shape[1]) if len(event) else 0,
              "ids": list(event.ids), "labels": [int(v) for v in event.labels]}
    if event.prediction_id is not None:
        header["prediction_id"] = event.prediction_id
    head = json.dumps(header, separators=(",", ":")).encode()
    payload = _HEAD.pack(EVENT_MAGIC, EVENT_VERSION, int(event.kind), len(head)) + head + event.pixels.tobytes()
    return payload + _CRC.pack(zlib.crc32(payload))


def _verified(blob: bytes, magic: bytes, what: str) -> bytes:
    blob = bytes(blob)
    if len(blob) < len(magic) + _CRC.size or not blob.startswith(magic):
        raise EventError(f"not a Hebb {what}")
    payload, (crc,) = blob[:-_CRC.size], _CRC.unpack(blob[-_CRC.size:])
    if zlib.crc32(payload) != crc:
        raise EventError(f"{what} checksum mismatch (corrupt)")
    return payload


def decode_event(blob: bytes) -> LearnEvent:
    payload = _verified(blob, EVENT_MAGIC, "log event")
    try:
        _, version, kind, head_len = _HEAD.unpack_from(payload)
        if version != EVENT_VERSION:
            raise UnsupportedFormat(f"log event version {version} is not supported (expected {EVENT_VERSION})")
        header = json.loads(payload[_HEAD.size:_HEAD.size + head_len])
        body = payload[_HEAD.size + head_len:]
        n, size = int(header["n"]), int(header["size"])
        if len(body) != n * size:
            raise EventError(f"log event body has {len(body)} bytes, expected {n * size}")
        pixels = np.frombuffer(body, np.uint8).reshape(n, size).copy()
        return LearnEvent(kind=EventKind(kind), ids=header["ids"], pixels=pixels, labels=header["labels"],
                          prediction_id=header.get("prediction_id"))
    except EventError:
        raise
    except (KeyError, ValueError, TypeError, struct.error) as exc:
        raise EventError(f"malformed log event: {exc}") from exc


@dataclass
class CheckpointPayload:
    """What one checkpoint holds for one model."""

    network_state: bytes                     # model.encode_state(net.state_dict()) (or any buffer of it)
    seen_ids: list[str] = field(default_factory=list)   # oldest first
    last_log_id: str | None = None           # newest log entry already applied
    extra: dict[str, Any] = field(default_factory=dict)


def encode_checkpoint(payload: CheckpointPayload) -> bytes:
    """Magic, version, JSON head (seen ids, log position), the network state, CRC32 of it all."""
    return encode_checkpoint_buffer(payload).tobytes()


def encode_checkpoint_buffer(payload: CheckpointPayload) -> memoryview:
    """:func:`encode_checkpoint` as a read-only buffer, built without holding the GIL: the network
    state is tens of MB, joined by numpy and checksummed by zlib (``bytes`` of it is one more copy
    that holds the GIL; the stores take the buffer as it is)."""
    head = json.dumps({"seen_ids": payload.seen_ids, "last_log_id": payload.last_log_id, "extra": payload.extra},
                      separators=(",", ":")).encode()
    blob = join_with_checksum([_CKPT_HEAD.pack(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, len(head)) + head,
                               payload.network_state], lambda body: _CRC.pack(zlib.crc32(body)))
    return memoryview(blob).toreadonly()


def decode_checkpoint(blob: bytes) -> CheckpointPayload:
    payload = _verified(blob, CHECKPOINT_MAGIC, "checkpoint")
    try:
        _, version, head_len = _CKPT_HEAD.unpack_from(payload)
        if version != CHECKPOINT_VERSION:
            raise UnsupportedFormat(f"checkpoint version {version} is not supported "
                                    f"(expected {CHECKPOINT_VERSION})")
        header = json.loads(payload[_CKPT_HEAD.size:_CKPT_HEAD.size + head_len])
        return CheckpointPayload(network_state=payload[_CKPT_HEAD.size + head_len:],
                                 seen_ids=list(header["seen_ids"]), last_log_id=header.get("last_log_id"),
                                 extra=dict(header.get("extra") or {}))
    except EventError:
        raise
    except (KeyError, ValueError, TypeError, struct.error) as exc:
        raise EventError(f"malformed checkpoint: {exc}") from exc
