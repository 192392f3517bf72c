"""``hebb bench-durability``: what durability costs. The same MNIST batches are learned through the
service layer (``ModelManager``, no HTTP) on each store — ``memory://`` (no durability), the file
store and Redis (a private ``redis-server`` with ``appendonly yes, appendfsync always`` unless
``--redis-url`` is given) — measuring:

* ingest samples/s and the mean durable-append time per batch;
* recovery time of a fresh process from the log alone (``--samples`` logged samples replayed);
* checkpoint time (capture, encode, write, trim) and size; recovery time from that checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from service.durability import Durability
from service.manager import ModelManager
from service.stores import make_store

MODEL = "bench"


class TimedAppends:
    """Wraps a store to time its durable appends."""

    def __init__(self, store):
        self._store = store
        self.seconds = 0.0
        self.count = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def append(self, name, event):
        started = time.perf_counter()
        try:
            return await self._store.append(name, event)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1


async def _start(store) -> tuple[ModelManager, Durability, float]:
    # no scheduled or shutdown checkpoints: the bench takes them explicitly
    durability = Durability(every_samples=10**12, every_seconds=1e12, checkpoint_on_shutdown=False)
    manager = ModelManager(store, recover=durability.recover, checkpointer=durability.checkpoint)
    started = time.perf_counter()
    await manager.start()
    return manager, durability, time.perf_counter() - started


async def _ingest(manager: ModelManager, X: np.ndarray, y: np.ndarray, batch: int, concurrency: int) -> float:
    starts = iter(range(0, len(X), batch))

    async def producer() -> None:
        for start in starts:   # shared iterator: each batch is taken by one producer
            stop = min(start + batch, len(X))
            await manager.learn(MODEL, X[start:stop], y[start:stop].tolist(), [f"s{i}" for i in range(start, stop)])

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench_store(url: str, X: np.ndarray, y: np.ndarray, preset: str, batch: int, concurrency: int) -> dict:
    store = TimedAppends(make_store(url))
    await store.open()
    try:
        manager, _, _ = await _start(store)
        await manager.create_model(MODEL, preset, seed=0)
        seconds = await _ingest(manager, X, y, batch, concurrency)
        digest = (await manager.info(MODEL))["state_digest"]
        await manager.close()
        result = {"store": url.split("://")[0], "samples": len(X), "ingest_seconds": round(seconds, 3),
                  "ingest_samples_per_second": round(len(X) / seconds, 1),
                  "append_ms_per_batch": round(1000 * store.seconds / max(store.count, 1), 3)}
        if url.startswith("memory://"):
            return result

        # a fresh process: registry, no checkpoint, the whole log replayed
        manager, durability, recovery = await _start(store)
        assert (await manager.info(MODEL))["state_digest"] == digest, "replay did not restore the same state"
        result["recovery_from_log_seconds"] = round(recovery, 3)
        result["recovery_replayed_samples"] = durability.last_recovery[MODEL]["replayed_samples"]

        started = time.perf_counter()
        meta = await manager.checkpoint(MODEL)
        result["checkpoint_seconds"] = round(time.perf_counter() - started, 3)
        result["checkpoint_bytes"] = meta.size
        await manager.close()

        manager, durability, recovery = await _start(store)
        assert (await manager.info(MODEL))["state_digest"] == digest, "checkpoint did not restore the same state"
        result["recovery_from_checkpoint_seconds"] = round(recovery, 3)
        await manager.delete_model(MODEL)
        await manager.close()
        return result
    finally:
        await store.close()


async def run_all(args: argparse.Namespace, X: np.ndarray, y: np.ndarray, redis_url: str, workdir: Path) -> list[dict]:
    # compile the kernels once, outside every measurement
    warm = make_store("memory://")
    await warm.open()
    manager, _, _ = await _start(warm)
    await manager.create_model("warmup", args.preset, seed=0)
    await manager.learn("warmup", X[: 2 * args.batch], y[: 2 * args.batch].tolist(), [None] * (2 * args.batch))
    await manager.close()

    urls = {"memory": "memory://", "file": f"file://{workdir / 'file-store'}", "redis": redis_url}
    results = []
    for name in args.stores:
        result = await bench_store(urls[name], X, y, args.preset, args.batch, args.concurrency)
        print(_row(result), flush=True)
        results.append(result)
    return results


def _row(r: dict) -> str:
    row = f"{r['store']:>7}: {r['ingest_samples_per_second']:>8.1f} samples/s, append {r['append_ms_per_batch']:.2f} ms/batch"
    if "checkpoint_seconds" in r:
        row += (f", recovery {r['recovery_from_log_seconds']:.2f} s from log ({r['recovery_replayed_samples']} samples)"
                f", checkpoint {r['checkpoint_seconds']:.2f} s / {r['checkpoint_bytes'] / 1e6:.1f} MB"
                f", recovery {r['recovery_from_checkpoint_seconds']:.2f} s from checkpoint")
    return row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="MNIST directory (default: HEBB_DATA_DIR)")
    parser.add_argument("--samples", type=int, default=10_000, help="samples ingested (and then recovered)")
    parser.add_argument("--batch", type=int, default=256, help="samples per learn call")
    parser.add_argument("--concurrency", type=int, default=2, help="learn calls in flight")
    parser.add_argument("--preset", default="mnist", help="engine preset")
    parser.add_argument("--stores", nargs="+", default=["memory", "file", "redis"], choices=["memory", "file", "redis"])
    parser.add_argument("--redis-url", help="use this Redis instead of starting a private AOF redis-server")
    parser.add_argument("--appendfsync", default="always", choices=["always", "everysec", "no"],
                        help="AOF fsync policy of the private redis-server")
    parser.add_argument("--workdir", help="directory for the file store and the private Redis (default: a temp dir)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON to this path")


def run(args: argparse.Namespace) -> int:
    from model.data import load_dataset
    from service.redis_process import RedisProcess

    # SIGTERM unwinds like Ctrl-C, so the private redis-server and temp dir are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data = load_dataset(args.data)
    X = data["train_images"][: args.samples].reshape(-1, 784)
    y = data["train_labels"][: args.samples]
    with tempfile.TemporaryDirectory(prefix="hebb-bench-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        redis = None
        redis_url = args.redis_url or ""
        if "redis" in args.stores and not args.redis_url:
            redis = RedisProcess(workdir / "redis", appendfsync=args.appendfsync).start()
            redis_url = redis.url
        try:
            print(f"hebb bench-durability: {len(X)} samples, preset {args.preset}, batches of {args.batch}, "
                  f"{args.concurrency} in flight", flush=True)
            results = asyncio.run(run_all(args, X, y, redis_url, workdir))
        finally:
            if redis is not None:
                redis.stop()
    if args.json_path:
        settings = {k: getattr(args, k) for k in ("samples", "batch", "concurrency", "preset", "appendfsync")}
        Path(args.json_path).write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    return 0
