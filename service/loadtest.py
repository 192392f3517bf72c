"""``hebb loadtest``: measure a running service (async httpx).

1. **ingest** — ``--ingest-samples`` MNIST training samples posted in batches of ``--batch`` (256)
   ``x_b64`` samples, ``--ingest-concurrency`` batches in flight → samples/s.
2. **predict** — for ``--seconds``, ``--clients`` (32) concurrent clients each send single-sample
   predict requests while one more client keeps learning batches of ``--batch`` → p50/p99 latency and
   requests/s. With ``--predict-rate R`` the clients together offer R requests/s (each client paces
   itself, the way independent callers do); with 0 they send back to back (closed loop, saturation).

Latency is measured by the client, from just before the request is sent until its response is read.
The server's own view is reported too (``server_predict_p50_ms``/``server_predict_p99_ms``): what
the phase's predict requests added to the service's request-duration histogram (``/metrics``),
quantiles interpolated within buckets as Prometheus' ``histogram_quantile`` does. The difference
is time spent outside the server's request handling: in the network stack and in the load
generator itself, which on a shared machine competes with the server for the cores.
Each predicting client is an ``httpx.AsyncClient`` of its own with one keep-alive connection, as
independent callers are: one client shared by all, with a pool of 32+ connections, spent most of a
core scanning its pool on every request, and on a machine shared with the server the generator's
own CPU use inflates the latencies it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from model.data import load_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="service base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--learn-url", default=None,
                        help="send learning and model management here instead (a learner, when --url is a "
                             "predictor of the learner/predictor roles)")
    parser.add_argument("--data", required=True, help="MNIST directory (four IDX .gz files)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON to this path")
    parser.add_argument("--model", default="loadtest", help="model to use (created if missing)")
    parser.add_argument("--preset", default="mnist", help="preset when the model is created")
    parser.add_argument("--api-key", help="Bearer key (a write key: the test learns)")
    parser.add_argument("--ingest-samples", type=int, default=10_240, help="samples posted in the ingest phase")
    parser.add_argument("--batch", type=int, default=256, help="samples per learn request")
    parser.add_argument("--ingest-concurrency", type=int, default=2, help="learn requests in flight while ingesting")
    parser.add_argument("--clients", type=int, default=32, help="concurrent predict clients")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of the predict phase")
    parser.add_argument("--predict-rate", type=float, default=0.0,
                        help="total predict requests/s offered by the clients (0: back to back)")
    parser.add_argument("--keep-model", action="store_true", help="do not delete a model the test created")


_JSON = {"content-type": "application/json"}


def _b64_rows(X: np.ndarray) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode() for row in X]


def _learn_bodies(X: np.ndarray, y: np.ndarray, batch: int, id_prefix: str) -> list[bytes]:
    """Pre-serialised learn request bodies, so the client spends its CPU on HTTP, not on JSON."""
    rows = _b64_rows(X)
    bodies = []
    for start in range(0, len(X), batch):
        samples = [{"id": f"{id_prefix}-{i}", "x_b64": rows[i], "label": int(y[i])}
                   for i in range(start, min(start + batch, len(X)))]
        bodies.append(orjson.dumps({"samples": samples}))
    return bodies


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _ingest(client, model: str, bodies: list[bytes], concurrency: int) -> tuple[int, float]:
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0

    async def worker():
        nonlocal accepted
        while not queue.empty():
            body = queue.get_nowait()
            r = await client.post(f"v1/models/{model}/samples", content=body, headers=_JSON)
            r.raise_for_status()
            accepted += r.json()["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, time.perf_counter() - started


async def _predict_phase(clients_of, learn_client, model: str, inputs: list[bytes], learn_bodies: list[bytes], clients: int,
                         seconds: float, rate: float) -> dict:
    latencies: list[float] = []
    errors = 0
    learned = 0
    stop_at = time.perf_counter() + seconds
    interval = clients / rate if rate > 0 else 0.0

    async def predictor(k: int):
        nonlocal errors
        i = k
        next_send = time.perf_counter() + (interval * k / clients if interval else 0.0)
        while True:
            now = time.perf_counter()
            if interval:
                if next_send > now:
                    await asyncio.sleep(next_send - now)
                next_send += interval
            if time.perf_counter() >= stop_at:
                return
            body = inputs[i % len(inputs)]
            i += clients
            sent = time.perf_counter()
            r = await clients_of[k].post(f"v1/models/{model}/predict", content=body, headers=_JSON)
            elapsed = time.perf_counter() - sent
            if r.status_code == 200:
                latencies.append(elapsed)
            else:
                errors += 1

    async def learner():
        nonlocal learned
        i = 0
        while time.perf_counter() < stop_at:
            r = await learn_client.post(f"v1/models/{model}/samples", content=learn_bodies[i % len(learn_bodies)],
                                        headers=_JSON)
            r.raise_for_status()
            learned += r.json()["accepted"]
            i += 1

    started = time.perf_counter()
    await asyncio.gather(learner(), *(predictor(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    ms = [v * 1000 for v in latencies]
    return {"predict_p50_ms": _percentile(ms, 50), "predict_p90_ms": _percentile(ms, 90),
            "predict_p99_ms": _percentile(ms, 99), "predict_max_ms": max(ms) if ms else float("nan"),
            "predict_requests": len(ms), "predict_errors": errors,
            "predict_requests_per_second": len(ms) / elapsed,
            "learn_samples_per_second_during_predict": learned / elapsed}


_PREDICT_ROUTE = "/v1/models/{name}/predict"


def predict_histogram(metrics_text: str) -> dict[float, float]:
    """Cumulative bucket counts (upper bound → count) of the server's latency histogram of
    successful ``/v1`` predict requests, from a ``/metrics`` scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "hebb_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_bucket") and labels.get("route") == _PREDICT_ROUTE and labels.get("status") == "200":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """The ``q`` quantile of what a cumulative histogram gained between two scrapes, linear within
    the bucket that holds it (Prometheus' ``histogram_quantile``); None without observations.

    >>> histogram_quantile(0.5, {}, {0.01: 50.0, 0.02: 100.0, math.inf: 100.0})
    0.01
    >>> histogram_quantile(0.99, {0.01: 50.0, 0.02: 50.0, math.inf: 50.0}, {0.01: 50.0, 0.02: 150.0, math.inf: 150.0})
    0.0199
    """
    bounds = sorted(after)
    gained = [after[b] - before.get(b, 0.0) for b in bounds]
    if not gained or gained[-1] <= 0:
        return None
    rank = q * gained[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, gained):
        if count >= rank:
            if math.isinf(bound):  # beyond the last finite bucket: its bound is all that is known
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


def _server_quantiles(before: dict | None, after: dict | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in (50, 99):
        value = None if before is None or after is None else histogram_quantile(q / 100, before, after)
        out[f"server_predict_p{q}_ms"] = None if value is None else round(value * 1e3, 2)
    return out


async def _server_histogram(client) -> dict[float, float] | None:
    try:
        r = await client.get("metrics")
    except Exception:  # noqa: BLE001 — the server's view is optional; the client's is the measurement
        return None
    return predict_histogram(r.text) if r.status_code == 200 else None


async def _until_predicting(client, model: str, body: bytes, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.post(f"v1/models/{model}/predict", content=body, headers=_JSON)
        if r.status_code == 200 or time.monotonic() > deadline:
            r.raise_for_status()
            return
        await asyncio.sleep(0.2)


async def run_loadtest(args: argparse.Namespace) -> dict:
    import httpx

    data = load_dataset(args.data)
    X = data["train_images"].reshape(len(data["train_images"]), -1)
    y = data["train_labels"]
    n = min(args.ingest_samples, len(X))
    run_id = f"{int(time.time())}"
    ingest_bodies = _learn_bodies(X[:n], y[:n], args.batch, f"lt{run_id}-ingest")
    # the learning client of the predict phase streams the samples after the ingested ones
    rest = X[n:n + 64 * args.batch] if n < len(X) else X[:64 * args.batch]
    rest_y = y[n:n + 64 * args.batch] if n < len(X) else y[:64 * args.batch]
    background_bodies = _learn_bodies(rest, rest_y, args.batch, f"lt{run_id}-bg")
    test = data["test_images"].reshape(len(data["test_images"]), -1)[:2000]
    predict_bodies = [orjson.dumps({"inputs": [{"x_b64": row}]}) for row in _b64_rows(test)]

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}

    def session(url: str, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(base_url=url.rstrip("/") + "/", headers=headers, limits=limits,
                                 timeout=httpx.Timeout(120.0))

    async with contextlib.AsyncExitStack() as stack:
        predictors = [await stack.enter_async_context(session(args.url, 1)) for _ in range(args.clients)]
        learner = await stack.enter_async_context(session(args.learn_url or args.url, args.ingest_concurrency + 2))
        created = False
        r = await learner.get(f"v1/models/{args.model}")
        if r.status_code == 404:
            r = await learner.post("v1/models", json={"name": args.model, "preset": args.preset})
            created = True
        r.raise_for_status()
        preset = r.json()["preset"]
        try:
            # warm-up: first calls compile nothing server-side (numba caches), but open connections;
            # a separate predictor answers once the learner has published the model
            await _until_predicting(predictors[0], args.model, predict_bodies[0])
            accepted, ingest_seconds = await _ingest(learner, args.model, ingest_bodies, args.ingest_concurrency)
            server_before = await _server_histogram(predictors[0])
            predict = await _predict_phase(predictors, learner, args.model, predict_bodies, background_bodies,
                                           args.clients, args.seconds, args.predict_rate)
            server_after = await _server_histogram(predictors[0])
        finally:
            if created and not args.keep_model:
                await learner.delete(f"v1/models/{args.model}")
    return {
        "ingest_samples_per_second": accepted / ingest_seconds,
        "ingest_samples": accepted,
        "ingest_seconds": ingest_seconds,
        **predict,
        **_server_quantiles(server_before, server_after),
        "config": {"url": args.url, "learn_url": args.learn_url or args.url, "preset": preset, "batch": args.batch,
                   "ingest_concurrency": args.ingest_concurrency, "clients": args.clients,
                   "seconds": args.seconds, "predict_rate": args.predict_rate,
                   "python": platform.python_version(), "machine": platform.machine()},
    }


def run(args: argparse.Namespace) -> int:
    results = asyncio.run(run_loadtest(args))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json_path:
        Path(args.json_path).write_text(text + "\n")
    if results["predict_errors"]:
        print(f"hebb loadtest: {results['predict_errors']} predict requests failed", file=sys.stderr)
        return 1
    return 0
