"""Embedded durable store on local files (``file://DIR``): no server needed, same contract as Redis.

Layout under ``DIR``::

    models/<quoted name>/record.json              registry entry (atomic replace)
    models/<quoted name>/log/<first seq>.seg      append-only log segments
    models/<quoted name>/log/TRIMMED              id through which the log was trimmed
    models/<quoted name>/checkpoints/<id>.ckpt    checkpoint blobs
    models/<quoted name>/checkpoints/INDEX        metadata of the kept checkpoints, newest first

Every file that is replaced is written to a temp file, fsynced, renamed over the old one and the
directory fsynced, so a crash leaves either the old or the new version. INDEX is the "latest"
pointer: it is rewritten only after the new checkpoint file is complete and durable.

Log records are framed ``<u32 payload length><u32 crc32><u64 seq><payload>`` and fsynced before
:meth:`FileStore.append` returns. A crash can leave a torn record at the end of the last segment;
opening the log truncates it away (it was never acknowledged).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator
from urllib.parse import quote, unquote, urlsplit

from service.stores.base import (CHECKPOINTS_KEPT, CheckpointMeta, CheckpointNotFound,
                                 ModelRecord, Store, StoreError, checksum, log_id_key,
                                 stored_blob, verified_blob)

log = logging.getLogger("hebb.store.file")

_RECORD_HEADER = struct.Struct("<IIQ")  # payload length, crc32(seq + payload), seq
_SEGMENT_SUFFIX = ".seg"
_MAX_RECORD = 1 << 30  # a length beyond this can only be a torn/corrupt header
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 64  # records handed from the reader thread to the event loop at a time


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _seq_of(log_id: str) -> int:
    major, minor = log_id_key(log_id)
    if minor != 0:
        raise ValueError(f"log id {log_id!r} was not issued by the file store")
    return major


def _frame(seq: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<Q", seq)))
    return _RECORD_HEADER.pack(len(payload), crc, seq) + payload


def _scan(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(offset, seq, payload)`` for each intact record; stop at the first torn or bad one."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(_RECORD_HEADER.size)
            if len(header) < _RECORD_HEADER.size:
                return
            length, crc, seq = _RECORD_HEADER.unpack(header)
            if length > _MAX_RECORD:
                return
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload, zlib.crc32(struct.pack("<Q", seq))) != crc:
                return
            yield offset, seq, payload
            offset += _RECORD_HEADER.size + length


@dataclass
class _Log:
    """One model's segmented log, opened (and its torn tail repaired) on first use."""

    directory: Path
    segment_bytes: int
    next_seq: int = 1
    trimmed_through: int = 0
    active: Path | None = None
    active_size: int = 0
    fd: int | None = None

    def segments(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.directory.glob(f"*{_SEGMENT_SUFFIX}"):
            try:
                found.append((int(p.name[: -len(_SEGMENT_SUFFIX)]), p))
            except ValueError:
                continue
        return sorted(found)

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        marker = self.directory / "TRIMMED"
        self.trimmed_through = int(marker.read_text()) if marker.exists() else 0
        self.next_seq = self.trimmed_through + 1
        segments = self.segments()
        if segments:
            first_seq, path = segments[-1]
            end, last_seq = 0, None
            for offset, seq, payload in _scan(path):
                end, last_seq = offset + _RECORD_HEADER.size + len(payload), seq
            size = path.stat().st_size
            if size != end:
                log.warning("log %s: dropping a torn tail of %d bytes at offset %d (never acknowledged)",
                            path, size - end, end)
                with open(path, "r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            self.next_seq = max(self.next_seq, first_seq, (last_seq or 0) + 1)
            self.active, self.active_size = path, end
        self._open_active()

    def _open_active(self) -> None:
        if self.active is None:
            self.active = self.directory / f"{self.next_seq:020d}{_SEGMENT_SUFFIX}"
            self.active_size = 0
        self.fd = os.open(self.active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.directory)

    def _roll(self) -> None:
        self.close()
        self.active = None
        self._open_active()

    def append(self, payload: bytes) -> str:
        if self.active_size >= self.segment_bytes:
            self._roll()
        seq = self.next_seq
        record = _frame(seq, payload)
        try:
            written = os.write(self.fd, record)
            if written != len(record):
                raise OSError(f"short write ({written} of {len(record)} bytes)")
            os.fdatasync(self.fd)
        except OSError:
            # leave no half record behind a failed append: the next one must follow an intact tail
            os.ftruncate(self.fd, self.active_size)
            raise
        self.active_size += len(record)
        self.next_seq = seq + 1
        return f"{seq}-0"

    def read_after(self, after_seq: int) -> Iterator[tuple[str, bytes]]:
        floor = max(after_seq, self.trimmed_through)
        segments = self.segments()
        for i, (first_seq, path) in enumerate(segments):
            following = segments[i + 1][0] if i + 1 < len(segments) else None
            if following is not None and following - 1 <= floor:
                continue  # every record of this segment is at or below the floor
            try:
                for _, seq, payload in _scan(path):
                    if seq > floor:
                        yield f"{seq}-0", payload
            except FileNotFoundError:
                continue  # trimmed away while we were reading: all its records were below the floor

    def trim(self, upto_seq: int) -> int:
        upto_seq = min(upto_seq, self.next_seq - 1)
        if upto_seq <= self.trimmed_through:
            return 0
        dropped = upto_seq - self.trimmed_through   # seqs are contiguous: every one in between exists
        atomic_write(self.directory / "TRIMMED", str(upto_seq).encode())
        self.trimmed_through = upto_seq
        if self.next_seq - 1 <= upto_seq and self.active_size:
            self._roll()  # the active segment is fully trimmed: start a fresh one so it can go
        segments = self.segments()
        for i, (first_seq, path) in enumerate(segments[:-1]):
            if segments[i + 1][0] - 1 <= upto_seq:
                path.unlink()
        _fsync_dir(self.directory)
        return dropped

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FileStore(Store):
    """``file://DIR`` — relative paths are relative to the working directory (``file://./hebb-data``)."""

    def __init__(self, url: str, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        self.url = url
        self.root = Path(path_from_url(url))
        self.segment_bytes = segment_bytes
        self._logs: dict[str, _Log] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._opened = False
        self._owner_fd: int | None = None

    # ----------------------------------------------------------------- paths
    @property
    def _models_dir(self) -> Path:
        return self.root / "models"

    def _model_dir(self, name: str) -> Path:
        if not name or name in (".", ".."):
            raise StoreError(f"model name {name!r} cannot be stored")
        return self._models_dir / quote(name, safe="")

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _run(self, fn, *args):
        """Run blocking file I/O in a worker thread; OS errors become StoreError."""
        if not self._opened:
            raise StoreError(f"store {self.url} is not open")
        try:
            return await asyncio.to_thread(fn, *args)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"file store {self.root}: {exc}") from exc

    # ----------------------------------------------------------------- lifecycle
    async def open(self) -> None:
        try:
            self._models_dir.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-probe"
            atomic_write(probe, b"ok")
            probe.unlink()
            fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot use {self.root} as a store directory: {exc}") from exc
        try:
            # one writer per directory: two processes appending to the same log would corrupt it.
            # The OS drops the lock when its holder dies, even by kill -9.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"store directory {self.root} is in use by another process") from exc
        self._owner_fd = fd
        self._opened = True

    async def close(self) -> None:
        for lg in self._logs.values():
            lg.close()
        self._logs.clear()
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None
        self._opened = False

    async def ping(self) -> bool:
        return self._opened and self._models_dir.is_dir()

    # ----------------------------------------------------------------- registry
    async def save_model(self, record: ModelRecord) -> None:
        directory = self._model_dir(record.name)

        def write() -> None:
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self._models_dir)
            atomic_write(directory / "record.json", json.dumps(record.to_dict(), sort_keys=True).encode())

        async with self._lock(record.name):
            await self._run(write)

    async def delete_model(self, name: str) -> bool:
        directory = self._model_dir(name)

        def remove() -> bool:
            if not (directory / "record.json").exists():
                return False
            # one rename makes the deletion atomic; the slow rmtree happens after it
            doomed = self.root / f".deleted-{uuid.uuid4().hex}"
            os.replace(directory, doomed)
            _fsync_dir(self._models_dir)
            shutil.rmtree(doomed, ignore_errors=True)
            return True

        async with self._lock(name):
            lg = self._logs.pop(name, None)
            if lg is not None:
                lg.close()
            return await self._run(remove)

    async def list_models(self) -> list[ModelRecord]:
        def read() -> list[ModelRecord]:
            records = []
            for directory in self._models_dir.iterdir():
                path = directory / "record.json"
                if path.exists():
                    records.append(ModelRecord.from_dict(json.loads(path.read_bytes())))
            return records

        records = await self._run(read)
        return sorted(records, key=lambda r: (r.created_at, r.name))

    # ----------------------------------------------------------------- log
    def _open_log(self, name: str) -> _Log:
        lg = self._logs.get(name)
        if lg is None:
            if not (self._model_dir(name) / "record.json").exists():
                raise StoreError(f"model {name!r} is not in the registry")
            lg = _Log(self._model_dir(name) / "log", self.segment_bytes)
            lg.open()
            self._logs[name] = lg
        return lg

    async def append(self, name: str, event: bytes) -> str:
        async with self._lock(name):
            return await self._run(lambda: self._open_log(name).append(bytes(event)))

    async def read_log(self, name: str, after: str | None = None) -> AsyncIterator[tuple[str, bytes]]:
        after_seq = _seq_of(after) if after is not None else 0
        async with self._lock(name):
            lg = await self._run(self._open_log, name)
        # read in chunks in a thread; appends during iteration only add records past this reader
        reader = lg.read_after(after_seq)
        while True:
            chunk = await self._run(lambda: [entry for _, entry in zip(range(_READ_CHUNK), reader)])
            if not chunk:
                return
            for entry in chunk:
                yield entry

    async def trim_log(self, name: str, upto: str) -> int:
        async with self._lock(name):
            return await self._run(lambda: self._open_log(name).trim(_seq_of(upto)))

    async def trimmed_through(self, name: str) -> str | None:
        async with self._lock(name):
            lg = await self._run(self._open_log, name)
        return f"{lg.trimmed_through}-0" if lg.trimmed_through else None

    # ----------------------------------------------------------------- checkpoints
    def _checkpoint_dir(self, name: str) -> Path:
        return self._model_dir(name) / "checkpoints"

    def _read_index(self, name: str) -> tuple[int, list[CheckpointMeta]]:
        """(number of the last checkpoint ever saved, metadata of the kept ones newest first)."""
        path = self._checkpoint_dir(name) / "INDEX"
        if not path.exists():
            return 0, []
        index = json.loads(path.read_bytes())
        return int(index["last_number"]), [CheckpointMeta.from_dict(d) for d in index["checkpoints"]]

    def _write_index(self, name: str, last_number: int, kept: list[CheckpointMeta]) -> None:
        index = {"last_number": last_number, "checkpoints": [m.to_dict() for m in kept]}
        atomic_write(self._checkpoint_dir(name) / "INDEX", json.dumps(index).encode())

    def _remove_unlisted_blobs(self, name: str, kept: list[CheckpointMeta]) -> None:
        """Delete rotated-out blobs and orphans of a crash between a blob write and its index write."""
        wanted = {f"{m.id}.ckpt" for m in kept}
        for path in self._checkpoint_dir(name).glob("*.ckpt"):
            if path.name not in wanted:
                path.unlink()
        for path in self._checkpoint_dir(name).glob(".*.tmp"):   # a crash mid atomic_write
            path.unlink()

    async def save_checkpoint(self, name: str, blob: bytes, *, step: int, last_log_id: str | None,
                              config_digest: str) -> CheckpointMeta:
        blob = stored_blob(blob)

        def write() -> CheckpointMeta:
            if not (self._model_dir(name) / "record.json").exists():
                raise StoreError(f"model {name!r} is not in the registry")
            directory = self._checkpoint_dir(name)
            directory.mkdir(exist_ok=True)
            last_number, kept = self._read_index(name)
            number = last_number + 1
            meta = CheckpointMeta(id=f"{number:010d}", step=int(step), last_log_id=last_log_id,
                                  config_digest=config_digest, created_at=time.time(), size=len(blob),
                                  checksum=checksum(blob))
            atomic_write(directory / f"{meta.id}.ckpt", blob)
            kept = [meta, *kept][:CHECKPOINTS_KEPT]
            # the blob is durable: only now does the index (the "latest" pointer) name it
            self._write_index(name, number, kept)
            self._remove_unlisted_blobs(name, kept)
            return meta

        async with self._lock(name):
            return await self._run(write)

    async def list_checkpoints(self, name: str) -> list[CheckpointMeta]:
        return (await self._run(self._read_index, name))[1]

    async def load_checkpoint(self, name: str, checkpoint_id: str) -> bytes:
        def read() -> bytes:
            meta = next((m for m in self._read_index(name)[1] if m.id == checkpoint_id), None)
            path = self._checkpoint_dir(name) / f"{checkpoint_id}.ckpt"
            if meta is None or not path.exists():
                raise CheckpointNotFound(f"no checkpoint {checkpoint_id!r} for model {name!r}")
            return verified_blob(path.read_bytes(), meta, name)

        return await self._run(read)

    async def delete_checkpoints(self, name: str) -> int:
        def remove() -> int:
            last_number, kept = self._read_index(name)
            if not kept:
                return 0
            self._write_index(name, last_number, [])  # ids are never reused
            self._remove_unlisted_blobs(name, [])
            return len(kept)

        async with self._lock(name):
            return await self._run(remove)


def path_from_url(url: str) -> str:
    """``file://./data`` → ``./data``; ``file:///var/hebb`` → ``/var/hebb``; ``file://data`` → ``data``."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise ValueError(f"not a file:// URL: {url!r}")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ValueError(f"store URL {url!r} names no directory (e.g. file://./hebb-data)")
    return path
