"""``hebb stream``: feed an IDX dataset's training split into a running service through the Python
SDK (one online pass, with a progress bar), then predict the test split and print a JSON summary.

    hebb stream --url http://127.0.0.1:8000 --model digits --data /path/to/mnist --create-preset mnist
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

from model.data import DatasetError, load_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("HEBB_URL", "http://127.0.0.1:8000"),
                        help="service base URL (default: $HEBB_URL or http://127.0.0.1:8000)")
    parser.add_argument("--model", required=True, help="name of the model to teach")
    parser.add_argument("--data", default=None, help="directory with the four IDX files (default: $HEBB_DATA_DIR)")
    parser.add_argument("--limit", type=int, default=None, help="stream only the first N training samples")
    parser.add_argument("--test-limit", type=int, default=None, help="predict only the first N test samples")
    parser.add_argument("--create-preset", default=None, metavar="PRESET",
                        help="create the model with this preset first if it does not exist")
    parser.add_argument("--seed", type=int, default=None, help="seed for a model created with --create-preset")
    parser.add_argument("--batch-size", type=int, default=256, help="samples per learn request (default 256)")
    parser.add_argument("--api-key", default=os.environ.get("HEBB_API_KEY"), help="API key (default: $HEBB_API_KEY)")
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the summary to PATH")


def stream(client: Any, model: str, data: dict[str, np.ndarray], *, limit: int | None = None,
           test_limit: int | None = None, create_preset: str | None = None, seed: int | None = None,
           batch_size: int = 256, progress: bool = True) -> dict[str, Any]:
    """Stream ``data``'s training split into ``model`` through ``client`` (a ``hebb_client.Client``),
    then predict its test split; return the summary."""
    from hebb_client import Conflict

    if create_preset is not None:
        try:
            client.create_model(model, preset=create_preset, seed=seed)
        except Conflict:
            pass  # already there: keep teaching it
    handle = client.model(model)
    X, y = data["train_images"][:limit], data["train_labels"][:limit]
    X_test, y_test = data["test_images"][:test_limit], data["test_labels"][:test_limit]

    started = time.perf_counter()
    predictions = handle.learn(X, y, batch_size=batch_size, progress=progress)
    learn_seconds = time.perf_counter() - started
    test_labels = handle.predict(X_test).labels if len(X_test) else np.empty(0, np.int64)
    info = handle.info()
    return {
        "model": model,
        "samples": int(len(X)),
        "prequential_accuracy": float(np.mean(predictions == y)) if len(X) else None,
        "samples_per_second": len(X) / learn_seconds if learn_seconds > 0 else None,
        "learn_seconds": learn_seconds,
        "test_samples": int(len(X_test)),
        "test_accuracy": float(np.mean(test_labels == y_test)) if len(X_test) else None,
        "step": info.step,
        "state_digest": info.state_digest,
    }


def run(args: argparse.Namespace) -> int:
    try:
        from hebb_client import Client, HebbError
    except ImportError:
        print("hebb stream: the Python SDK is not installed: pip install ./clients/python", file=sys.stderr)
        return 2
    for flag, value in (("--limit", args.limit), ("--test-limit", args.test_limit)):
        if value is not None and value < 0:
            print(f"hebb stream: {flag} must be >= 0", file=sys.stderr)
            return 2
    try:
        data = load_dataset(args.data)
    except DatasetError as exc:
        print(f"hebb stream: {exc}", file=sys.stderr)
        return 2
    try:
        with Client(args.url, api_key=args.api_key) as client:
            summary = stream(client, args.model, data, limit=args.limit, test_limit=args.test_limit,
                             create_preset=args.create_preset, seed=args.seed, batch_size=args.batch_size,
                             progress=not args.no_progress)
    except HebbError as exc:
        print(f"hebb stream: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0
