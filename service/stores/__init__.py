"""Store backends and the factory that opens one from a URL.

``memory://`` — in-process (lost on exit). The durability work adds ``file://DIR`` and
``redis://host:port/db`` by registering an opener in :data:`OPENERS`.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from service.stores.base import (CHECKPOINTS_KEPT, CheckpointMeta, CheckpointNotFound, CorruptCheckpoint,
                                 ModelRecord, Store, StoreError, log_id_key)

DEFAULT_STORE_URL = "memory://"


def _memory(url: str) -> Store:
    from service.stores.memory import MemoryStore
    return MemoryStore(url)


# scheme -> constructor taking the full URL (imports stay lazy so redis is loaded only when used)
OPENERS: dict[str, Callable[[str], Store]] = {"memory": _memory}


def make_store(url: str) -> Store:
    """Build (not yet open) the store for ``url``; ValueError names the bad scheme."""
    scheme = urlsplit(url).scheme
    if scheme not in OPENERS:
        raise ValueError(f"store URL {url!r}: unsupported scheme {scheme!r} (supported: "
                         f"{', '.join(s + '://' for s in sorted(OPENERS))})")
    return OPENERS[scheme](url)


async def open_store(url: str) -> Store:
    """Build and open the store for ``url``."""
    store = make_store(url)
    await store.open()
    return store


__all__ = ["CHECKPOINTS_KEPT", "DEFAULT_STORE_URL", "OPENERS", "CheckpointMeta", "CheckpointNotFound",
           "CorruptCheckpoint", "ModelRecord", "Store", "StoreError", "log_id_key", "make_store", "open_store"]
