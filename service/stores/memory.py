"""In-process store: everything lives in dicts and is lost when the process exits. The default for
tests and throwaway servers; it honours the full :class:`~service.stores.base.Store` contract."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from typing import AsyncIterator

from service.stores.base import (CHECKPOINTS_KEPT, CheckpointMeta, CheckpointNotFound,
                                 ModelRecord, Store, log_id_key, stored_blob_and_checksum, verified_blob)


class MemoryStore(Store):
    def __init__(self, url: str = "memory://"):
        self.url = url
        self._models: dict[str, ModelRecord] = {}
        self._logs: dict[str, OrderedDict[str, bytes]] = {}
        self._log_seq = itertools.count(1)
        self._checkpoints: dict[str, list[tuple[CheckpointMeta, bytes]]] = {}  # newest first
        self._checkpoint_seq = itertools.count(1)
        self._opened = False

    async def open(self) -> None:
        self._opened = True

    async def close(self) -> None:
        self._opened = False

    async def ping(self) -> bool:
        return self._opened

    # ----------------------------------------------------------------- registry
    async def save_model(self, record: ModelRecord) -> None:
        self._models[record.name] = record

    async def delete_model(self, name: str) -> bool:
        existed = self._models.pop(name, None) is not None
        self._logs.pop(name, None)
        self._checkpoints.pop(name, None)
        return existed

    async def list_models(self) -> list[ModelRecord]:
        return sorted(self._models.values(), key=lambda r: (r.created_at, r.name))

    # ----------------------------------------------------------------- log
    async def append(self, name: str, event: bytes) -> str:
        log_id = f"{next(self._log_seq)}-0"
        self._logs.setdefault(name, OrderedDict())[log_id] = bytes(event)
        return log_id

    async def read_log(self, name: str, after: str | None = None) -> AsyncIterator[tuple[str, bytes]]:
        floor = log_id_key(after) if after is not None else (-1, -1)
        # a snapshot of the entries so appends during iteration do not break it
        for log_id, event in list(self._logs.get(name, {}).items()):
            if log_id_key(log_id) > floor:
                yield log_id, event
                await asyncio.sleep(0)

    async def trim_log(self, name: str, upto: str) -> int:
        log = self._logs.get(name)
        if not log:
            return 0
        limit = log_id_key(upto)
        doomed = [log_id for log_id in log if log_id_key(log_id) <= limit]
        for log_id in doomed:
            del log[log_id]
        return len(doomed)

    # ----------------------------------------------------------------- checkpoints
    async def save_checkpoint(self, name: str, blob: bytes, *, step: int, last_log_id: str | None,
                              config_digest: str) -> CheckpointMeta:
        blob, digest = await stored_blob_and_checksum(blob)
        meta = CheckpointMeta(id=f"{next(self._checkpoint_seq):010d}", step=int(step), last_log_id=last_log_id,
                              config_digest=config_digest, created_at=time.time(), size=len(blob), checksum=digest)
        kept = self._checkpoints.setdefault(name, [])
        kept.insert(0, (meta, blob))
        del kept[CHECKPOINTS_KEPT:]
        return meta

    async def list_checkpoints(self, name: str) -> list[CheckpointMeta]:
        return [meta for meta, _ in self._checkpoints.get(name, [])]

    async def load_checkpoint(self, name: str, checkpoint_id: str) -> bytes:
        for meta, blob in self._checkpoints.get(name, []):
            if meta.id == checkpoint_id:
                return verified_blob(blob, meta, name)
        raise CheckpointNotFound(f"no checkpoint {checkpoint_id!r} for model {name!r}")

    async def delete_checkpoints(self, name: str) -> int:
        return len(self._checkpoints.pop(name, []))
