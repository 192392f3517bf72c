"""Store backends and the factory that opens one from a URL.

``file://DIR`` — embedded durable store on local files (the default, ``file://./hebb-data``);
``redis://host:port/db`` — production store on Redis (streams + checkpoint blobs);
``memory://`` — in-process, lost on exit (tests, throwaway servers).
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from service.stores.base import (CHECKPOINTS_KEPT, CheckpointMeta, CheckpointNotFound, CorruptCheckpoint,
                                 ModelRecord, Store, StoreError, log_id_key)

DEFAULT_STORE_URL = "file://./hebb-data"


def _memory(url: str) -> Store:
    from service.stores.memory import MemoryStore
    return MemoryStore(url)


def _file(url: str) -> Store:
    from service.stores.file_store import FileStore
    return FileStore(url)


def _redis(url: str) -> Store:
    from service.stores.redis_store import RedisStore
    return RedisStore(url)


# scheme -> constructor taking the full URL (imports stay lazy so redis is loaded only when used)
OPENERS: dict[str, Callable[[str], Store]] = {"memory": _memory, "file": _file, "redis": _redis}


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
