"""``hebb bench-deploy``: what the scale-out roles cost, measured.

1. In process, for ``--preset``: size and time of what a learner publishes for predictors (the
   serving state) versus a full checkpoint — capture on the learner thread, encode, and the
   predictor's rebuild of a replica.
2. Live, on loopback: a private ``redis-server`` (AOF, ``appendfsync everysec`` as in the compose
   file), 2 ``hebb serve --role learner`` and 1 ``--role predictor`` processes at default settings.
   ``--samples`` MNIST samples are streamed in ``--batch`` batches through a client that fails over
   between the learners; the active learner is killed with SIGKILL halfway. Reported: the
   predictor's lag (acknowledged step → served step) and the takeover time (kill → the next
   acknowledged batch).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from service.redis_process import RedisProcess
from service.serve_process import ServeProcess

MODEL = "bench"
# a batch acknowledged this close before the kill may not have been published by the killed learner
# (publish interval 1 s): its lag then includes the takeover
STEADY_MARGIN_SECONDS = 2.0


class FailoverClient:
    """Posts to the current learner; on a connection error or a 503 it waits (``Retry-After``,
    at most 1 s) and tries the next URL. Callers reuse sample ids, so a retry never learns twice."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.current = 0
        self.failures: list[tuple[float, str]] = []

    def post(self, path: str, body: dict, give_up_after: float = 60.0) -> httpx.Response:
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                response = httpx.post(self.urls[self.current] + path, json=body, timeout=30.0)
                if response.status_code != 503:
                    return response
                pause = min(float(response.headers.get("Retry-After", "1")), 1.0)
                self.failures.append((time.monotonic(), f"503 {response.json().get('code')}"))
            except httpx.TransportError as exc:
                pause = 0.1
                self.failures.append((time.monotonic(), type(exc).__name__))
            self.current = (self.current + 1) % len(self.urls)
            time.sleep(pause)
        raise RuntimeError(f"no learner accepted {path} within {give_up_after}s: {self.failures[-5:]}")


def samples_body(X: np.ndarray, y: np.ndarray, start: int, stop: int) -> dict:
    return {"samples": [{"id": f"s{i:06d}", "label": int(y[i]), "x_b64": base64.b64encode(X[i].tobytes()).decode()}
                        for i in range(start, stop)]}


# ----------------------------------------------------------------------------- 1. in process


def measure_publication(preset: str, X: np.ndarray, y: np.ndarray) -> dict:
    from model import Network, encode_state
    from service.events import CheckpointPayload, encode_checkpoint
    from service.replica import ReplicaBuilder, encode_serving
    from service.stores.base import ModelRecord

    net = Network(preset, seed=0)
    net.learn_many(X, y)
    started = time.perf_counter()
    state = net.state_dict()
    capture = time.perf_counter() - started
    started = time.perf_counter()
    serving = encode_serving(net)
    encode_serving_s = time.perf_counter() - started
    started = time.perf_counter()
    checkpoint = encode_checkpoint(CheckpointPayload(encode_state(state), [], None))
    encode_checkpoint_s = time.perf_counter() - started
    builder = ReplicaBuilder(ModelRecord(name=MODEL, preset=preset))
    builder.build(serving)                       # the first build also makes the template
    started = time.perf_counter()
    builder.build(serving)
    rebuild = time.perf_counter() - started
    return {"preset": preset, "serving_state_bytes": len(serving), "checkpoint_bytes": len(checkpoint),
            "capture_ms": round(capture * 1e3, 1), "encode_serving_ms": round(encode_serving_s * 1e3, 1),
            "encode_checkpoint_ms": round(encode_checkpoint_s * 1e3, 1), "replica_rebuild_ms": round(rebuild * 1e3, 1)}


# ----------------------------------------------------------------------------- 2. live


def _role(role: str, store_url: str, workdir: Path) -> ServeProcess:
    return ServeProcess(workdir, ["--role", role, "--store", store_url, "--no-access-log"], name=role).start()


class StepWatch(threading.Thread):
    """Polls the predictor's served step; ``reached(step)`` is when it first served at least ``step``."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[tuple[float, int]] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self.halt.is_set():
                try:
                    r = client.get(f"{self.url}/v1/models/{MODEL}")
                    step = r.json().get("step") if r.status_code == 200 else None
                    if step is not None:
                        self.seen.append((time.monotonic(), step))
                    elif r.status_code != 200:
                        self.errors += 1
                except httpx.HTTPError:
                    self.errors += 1
                time.sleep(0.02)

    def reached(self, step: int) -> float | None:
        return next((t for t, s in self.seen if s >= step), None)


def run_live(preset: str, X: np.ndarray, y: np.ndarray, batch: int, logs: Path | None = None) -> dict:
    n = len(X)
    with tempfile.TemporaryDirectory(prefix="hebb-bench-deploy-") as tmp:
        workdir = Path(tmp) if logs is None else logs
        workdir.mkdir(parents=True, exist_ok=True)
        redis = RedisProcess(Path(tmp) / "redis", appendfsync="everysec").start()
        procs: list[ServeProcess] = []
        try:
            learners = [_role("learner", redis.url, workdir) for _ in range(2)]
            predictor = _role("predictor", redis.url, workdir)
            procs = [*learners, predictor]
            for proc in procs:
                proc.wait_for("/healthz", 120)
            learners[0].wait_for("/readyz", 120)
            r = httpx.post(learners[0].url + "/v1/models", json={"name": MODEL, "preset": preset}, timeout=120)
            r.raise_for_status()
            predictor.wait_for(f"/v1/models/{MODEL}", 120)
            predictor.wait_for("/readyz", 120)                         # the model's replica is loaded
            watch = StepWatch(predictor.url)
            watch.start()
            client = FailoverClient([learner.url for learner in learners])
            acked: list[tuple[float, int]] = []           # (time, step) of each acknowledged batch
            killed_at = takeover = None
            started = time.monotonic()
            for start in range(0, n, batch):
                if killed_at is None and start >= n // 2:
                    learners[client.current].proc.send_signal(signal.SIGKILL)
                    killed_at = time.monotonic()
                r = client.post(f"/v1/models/{MODEL}/samples", samples_body(X, y, start, min(start + batch, n)))
                r.raise_for_status()
                now = time.monotonic()
                if killed_at is not None and takeover is None:
                    takeover = now - killed_at
                acked.append((now, r.json()["step"]))
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + 30
            while watch.reached(n) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            watch.halt.set()
            watch.join(10)
            # steady: acknowledged well before the kill; the others may wait for the takeover to be published
            lags = {True: [], False: []}
            for at, step in acked:
                reached = watch.reached(step)
                steady = at < killed_at - STEADY_MARGIN_SECONDS or at > killed_at + takeover
                lags[steady].append((reached - at) if reached is not None else float("inf"))
            return {"preset": preset, "samples": n, "batch": batch, "seconds": round(elapsed, 2),
                    "takeover_seconds": round(takeover, 2),
                    "lag_p50_s": round(float(np.percentile(lags[True], 50)), 3),
                    "lag_p95_s": round(float(np.percentile(lags[True], 95)), 3), "lag_max_s": round(max(lags[True]), 3),
                    "lag_across_failover_max_s": round(max(lags[False]), 3), "predictor_errors": watch.errors,
                    "client_retries": len(client.failures),
                    "steady_lags_s": [round(v, 3) for v in lags[True]]}
        finally:
            for proc in procs:
                proc.stop()
            redis.kill()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="MNIST IDX directory (default: HEBB_DATA_DIR)")
    parser.add_argument("--preset", default="mnist", help="model preset (default: mnist)")
    parser.add_argument("--samples", type=int, default=4000, help="samples streamed in the live run")
    parser.add_argument("--batch", type=int, default=100, help="samples per learn request")
    parser.add_argument("--skip-live", action="store_true", help="only the in-process publication figures")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--logs", type=Path, default=None, help="keep the servers' logs in this directory")


def run(args: argparse.Namespace) -> int:
    from model.data import load_dataset

    data = args.data or os.environ.get("HEBB_DATA_DIR")
    if data is None:
        print("hebb bench-deploy: pass --data DIR or set HEBB_DATA_DIR", file=sys.stderr)
        return 2
    dataset = load_dataset(Path(data))
    X = dataset["train_images"][:args.samples].reshape(args.samples, -1)
    y = dataset["train_labels"][:args.samples]
    results = {"publication": measure_publication(args.preset, X[:1000], y[:1000])}
    print(json.dumps(results["publication"]))
    if not args.skip_live:
        results["live"] = run_live(args.preset, X, y, args.batch, args.logs)
        print(json.dumps({k: v for k, v in results["live"].items() if k != "steady_lags_s"}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0
