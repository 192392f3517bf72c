"""``hebb bench``: one online pass over a dataset's training stream (each sample once: predict, then
learn) in a seeded shuffled order, then the test set with learning frozen."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from model.blas import warm_up as warm_up_blas
from model.config import DEFAULT_PRESET, PRESETS, make_config
from model.data import load_dataset
from model.network import Network
from model.portable_blas import openblas_kernels

_REPORT_EVERY = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="directory with the four IDX files (default: $HEBB_DATA_DIR)")
    parser.add_argument("--download", action="store_true", help="download MNIST (checksum-verified) if files are missing")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    parser.add_argument("--config", default=None, help="JSON overrides of the preset's config")
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N samples of the shuffled stream")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the network and of the stream order")
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON here")
    parser.add_argument("--plots", default=None, help="write receptive-field and learning-curve PNGs here")
    parser.add_argument("--no-progress", action="store_true")


def run_bench(data=None, preset=DEFAULT_PRESET, overrides=None, train_limit=None, test_limit=None, seed=0,
              download=False, progress=True, plots=None) -> dict:
    ds = load_dataset(data, download=download)
    order = np.random.default_rng(seed).permutation(len(ds["train_images"]))[:train_limit]
    X, y = ds["train_images"][order], ds["train_labels"][order]
    X_test, y_test = ds["test_images"][:test_limit], ds["test_labels"][:test_limit]
    config = make_config(preset, overrides)
    height, width = X.shape[1:]
    if config.input_shape[:2] != (height, width) or config.classes <= int(max(y.max(), y_test.max())):
        config = make_config(preset, {**(overrides or {}), "input_shape": [height, width, 1],
                                      "classes": max(config.classes, int(max(y.max(), y_test.max())) + 1)})

    # numba compiles (or loads its cache) on first use: time that apart from the throughput
    t0 = time.perf_counter()
    warm_up_blas()
    warm = Network(config, seed=seed)
    warm.learn_many(X[:2], y[:2])
    warm.predict_many(X[:2])
    compile_seconds = time.perf_counter() - t0

    net = Network(config, seed=seed, preset=preset)
    curve_x, curve_y = [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(X), unit="sample", desc=f"learning ({preset})", smoothing=0.1)
    t0 = time.perf_counter()
    for start in range(0, len(X), _REPORT_EVERY):
        stop = min(start + _REPORT_EVERY, len(X))
        net.learn_many(X[start:stop], y[start:stop])
        curve_x.append(stop)
        curve_y.append(net.prequential_accuracy)
        if bar is not None:
            bar.update(stop - start)
            bar.set_postfix(prequential=f"{net.prequential_accuracy:.4f}")
    learn_seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()

    t0 = time.perf_counter()
    predictions = net.predict_many(X_test)
    predict_seconds = time.perf_counter() - t0
    stats = net.stats()
    result = {
        "test_accuracy": float(np.mean(predictions == y_test)),
        "prequential_accuracy": float(net.prequential_accuracy),
        "learn_samples_per_second": len(X) / learn_seconds,
        "predict_samples_per_second": len(X_test) / predict_seconds,
        "train_samples": int(len(X)),
        "test_samples": int(len(X_test)),
        "preset": preset,
        "seed": seed,
        "state_digest": net.state_digest(),
        "layers": [{"channels": layer["channels"], "dead_fraction": layer["dead_fraction"],
                    "win_rate_entropy": layer["win_rate_entropy"], "mean_weight_norm": layer["mean_weight_norm"]}
                   for layer in stats["layers"]],
    }
    if plots:
        from model.visualize import layer1_filters_png, save_curve

        out = Path(plots)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"filters-{preset}.png").write_bytes(layer1_filters_png(net))
        save_curve(out / f"prequential-{preset}.png", {preset: (np.array(curve_x), np.array(curve_y))},
                   "samples seen", "prequential accuracy", f"Hebb {preset}: one online pass", ylim=(0.8, 1.0))
    return result, compile_seconds


def run(args: argparse.Namespace) -> int:
    overrides = json.loads(args.config) if args.config else None
    result, compile_seconds = run_bench(args.data, args.preset, overrides, args.train_limit, args.test_limit,
                                        args.seed, args.download, not args.no_progress, args.plots)
    print(json.dumps(result, indent=2))
    print(f"numba compile/cache-load time (excluded from throughput): {compile_seconds:.2f} s")
    print(f"OpenBLAS kernels (the state digest depends on them): {', '.join(openblas_kernels())}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    return 0
