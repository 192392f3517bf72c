"""``hebb dashboard-probe``: watch a running service the way an open dashboard page does, and measure it.

For ``--seconds`` it reads ``GET /v1/models/{model}/events`` (reconnecting when a stream ends, as
the page does) and, like the page, fetches ``filters.png`` and ``units.png`` every
``--image-every`` seconds. It reports the gaps between snapshots (p50/p99/max: does the feed stay
on time while the service learns?), the size of a snapshot, the picture latencies, and the ingest
rate seen through the step. Run it next to a streaming client (``hebb stream`` / ``hebb loadtest``)
to see both the page's view and what watching costs the learner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time

import httpx
import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    parser.add_argument("--model", required=True, help="model to watch")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to watch")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between snapshots asked of the server")
    parser.add_argument("--image-every", type=float, default=3.0, help="fetch both pictures this often (0: never)")
    parser.add_argument("--api-key", help="Bearer key (a read key is enough)")
    parser.add_argument("--json", dest="json_path", help="also write the results as JSON to this path")


async def _watch_events(client: httpx.AsyncClient, args, ends: float, arrivals: list, sizes: list) -> None:
    while (left := ends - time.monotonic()) >= args.interval:
        params = {"interval": args.interval, "duration": min(left, 10.0)}
        async with client.stream("GET", f"/v1/models/{args.model}/events", params=params) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    snapshot = json.loads(line[5:])
                    arrivals.append((time.monotonic(), snapshot["step"]))
                    sizes.append(len(line) - 5)


async def _fetch_images(client: httpx.AsyncClient, args, ends: float, latencies: dict) -> None:
    while args.image_every > 0 and time.monotonic() < ends:
        started = time.monotonic()
        for picture in ("filters.png", "units.png"):
            t0 = time.perf_counter()
            (await client.get(f"/v1/models/{args.model}/{picture}")).raise_for_status()
            latencies[picture].append(time.perf_counter() - t0)
        await asyncio.sleep(max(args.image_every - (time.monotonic() - started), 0.0))


def _ms(values, q) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if len(values) else None


async def _probe(args) -> dict:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=60.0) as client:
        (await client.get(f"/v1/models/{args.model}/dashboard")).raise_for_status()
        arrivals: list[tuple[float, int]] = []
        sizes: list[int] = []
        latencies: dict[str, list[float]] = {"filters.png": [], "units.png": []}
        ends = time.monotonic() + args.seconds
        await asyncio.gather(_watch_events(client, args, ends, arrivals, sizes),
                             _fetch_images(client, args, ends, latencies))
    gaps = np.diff([t for t, _ in arrivals]) if len(arrivals) > 1 else np.array([])
    elapsed = arrivals[-1][0] - arrivals[0][0] if len(arrivals) > 1 else 0.0
    return {
        "model": args.model, "seconds": args.seconds, "interval_seconds": args.interval,
        "snapshots": len(arrivals),
        "snapshot_gap_p50_ms": _ms(gaps, 50), "snapshot_gap_p99_ms": _ms(gaps, 99),
        "snapshot_gap_max_ms": round(float(gaps.max()) * 1000, 1) if len(gaps) else None,
        "snapshot_bytes_mean": round(float(np.mean(sizes))) if sizes else None,
        "filters_png_p50_ms": _ms(latencies["filters.png"], 50), "units_png_p50_ms": _ms(latencies["units.png"], 50),
        "units_png_max_ms": _ms(latencies["units.png"], 100), "pictures_fetched": len(latencies["units.png"]),
        "ingest_samples_per_second": round((arrivals[-1][1] - arrivals[0][1]) / elapsed, 1) if elapsed else None,
        "machine": f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
    }


def run(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_probe(args))
    except httpx.HTTPStatusError as exc:
        print(f"hebb dashboard-probe: {exc.response.status_code} {exc.response.text}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"hebb dashboard-probe: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    for key, value in result.items():
        print(f"{key:28s} {value}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)
    return 0
