"""``hebb compare``: Hebb against River and scikit-learn online learners on the same stream.

Every system gets the identical seeded stream of a scenario (see :mod:`model.scenarios`) and
learns it prequentially: each sample is predicted first, then learned. Each system runs in its own
freshly spawned process, so its peak RSS is its own (the figure includes the interpreter and the
dataset, which every process loads alike; ``baseline_rss_mb`` is the RSS before the model exists).

Per system the command reports prequential accuracy, test accuracy on the full test set after the
stream, training throughput (prequential predict + learn, samples/s) and peak RSS; it prints a
markdown table, and with ``--plots DIR`` writes the table and a PNG of the trailing-window accuracy
against samples seen. In the ``drift`` scenario it also reports the accuracy in windows after the
switch and ``recovery_samples``: how many samples after the drift point the trailing window first
has an accuracy above 95 % (for Hebb's default preset in the JSON top level, for every system in
the tables).

River and scikit-learn are optional (``pip install 'hebb[compare]'``) and imported only by the
processes that run them.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from model.scenarios import SCENARIOS, Stream, build_stream

RECOVERY_ACCURACY = 0.95
DEFAULT_WINDOW = 500
DRIFT_WINDOWS = 10            # windows reported after the switch (10 × 500 = the 5,000-sample budget)
DEFAULT_SLOW_LIMIT = 10_000
_HEBB_CHUNK = 1_024           # samples per learn_many call (bounds the float copy of the input)
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class SystemSpec:
    name: str
    package: str | None       # optional dependency the system needs (None: Hebb itself)
    description: str
    slow: bool = False        # limited to --slow-limit samples


SYSTEMS: dict[str, SystemSpec] = {spec.name: spec for spec in (
    SystemSpec("hebb-mnist", None, "Hebb, preset mnist (default)"),
    SystemSpec("hebb-mnist-shallow", None, "Hebb, preset mnist-shallow"),
    SystemSpec("river-softmax", "river", "River StandardScaler | SoftmaxRegression"),
    SystemSpec("river-hoeffding-tree", "river", "River HoeffdingTreeClassifier", slow=True),
    SystemSpec("river-arf", "river", "River ARFClassifier (10 trees, ADWIN drift detection)", slow=True),
    SystemSpec("sklearn-sgd", "sklearn", "scikit-learn SGDClassifier.partial_fit (hinge)"),
    SystemSpec("sklearn-mlp", "sklearn", "scikit-learn MLPClassifier(100).partial_fit (backprop)"),
)}
_INSTALL_HINT = {"river": "River", "sklearn": "scikit-learn"}


# ---------------------------------------------------------------------------------- learners
class HebbLearner:
    """A Hebb network; in the drift scenario its readout is guarded by the Page-Hinkley detector."""

    def __init__(self, preset: str, scenario: str, seed: int):
        from model import Network, make_config

        overrides = {"readout": {"drift_detector": "page-hinkley"}} if scenario == "drift" else None
        self.net = Network(make_config(preset, overrides), seed=seed, preset=preset)
        self.notes = "readout drift detector: page-hinkley" if overrides else ""

    def learn(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.concatenate([self.net.learn_many(images[s:s + _HEBB_CHUNK], labels[s:s + _HEBB_CHUNK])
                               for s in range(0, len(images), _HEBB_CHUNK)])

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.net.predict_many(images)

    def extra(self) -> dict[str, Any]:
        return {"drifts_detected": self.net.stats()["readout"]["drifts"]}


class RiverLearner:
    """A River model fed one ``{pixel index: value in [0, 1]}`` dict per sample."""

    def __init__(self, model, notes: str = ""):
        self.model = model
        self.notes = notes

    @staticmethod
    def _rows(images: np.ndarray):
        flat = images.reshape(len(images), -1)
        for row in flat:
            yield dict(enumerate((row / 255.0).tolist()))

    def learn(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        preds = np.full(len(images), -1, np.int64)
        for i, x in enumerate(self._rows(images)):
            guess = self.model.predict_one(x)       # None before the first label
            preds[i] = -1 if guess is None else guess
            self.model.learn_one(x, int(labels[i]))
        return preds

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.array([-1 if (p := self.model.predict_one(x)) is None else p for x in self._rows(images)])

    def extra(self) -> dict[str, Any]:
        return {}


class SklearnLearner:
    """A scikit-learn estimator learning with ``partial_fit`` on batches of ``batch`` samples; each
    batch is predicted with the model as it was before learning it."""

    def __init__(self, model, batch: int, classes: int = 10):
        self.model = model
        self.batch = batch
        self.classes = np.arange(classes)
        self.fitted = False
        self.notes = f"partial_fit batch {batch}" + (" (one sample per call)" if batch == 1 else "")

    def learn(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        preds = np.full(len(images), -1, np.int64)
        flat = images.reshape(len(images), -1)
        for s in range(0, len(flat), self.batch):
            X = flat[s:s + self.batch].astype(np.float32) / np.float32(255.0)
            if self.fitted:
                preds[s:s + len(X)] = self.model.predict(X)
            self.model.partial_fit(X, labels[s:s + len(X)], classes=self.classes)
            self.fitted = True
        return preds

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict(images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0))

    def extra(self) -> dict[str, Any]:
        return {}


def make_learner(name: str, scenario: str, seed: int, mlp_batch: int):
    if name.startswith("hebb-"):
        return HebbLearner(name.removeprefix("hebb-"), scenario, seed)
    if name.startswith("river-"):
        from river import forest, linear_model, preprocessing, tree

        if name == "river-softmax":
            return RiverLearner(preprocessing.StandardScaler() | linear_model.SoftmaxRegression())
        if name == "river-hoeffding-tree":
            return RiverLearner(tree.HoeffdingTreeClassifier())
        return RiverLearner(forest.ARFClassifier(seed=seed))
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if name == "sklearn-sgd":
        return SklearnLearner(SGDClassifier(random_state=seed), batch=1)
    return SklearnLearner(MLPClassifier(hidden_layer_sizes=(100,), random_state=seed), batch=mlp_batch)


# ---------------------------------------------------------------------------------- one system
@dataclass(frozen=True)
class Job:
    system: str
    data_dir: str
    scenario: str
    limit: int | None
    seed: int
    mlp_batch: int
    test_limit: int | None = None


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_system(job: Job) -> dict[str, Any]:
    """Run one system on its stream (in the calling process) and return its measurements."""
    from model.data import load_dataset

    stream = build_stream(load_dataset(job.data_dir), job.scenario, job.limit, job.seed)
    test_images, test_labels = stream.test_images[:job.test_limit], stream.test_labels[:job.test_limit]
    baseline = _rss_mb()
    learner = make_learner(job.system, job.scenario, job.seed, job.mlp_batch)
    preds = []
    start = time.perf_counter()
    for s in range(0, len(stream), _PROGRESS_EVERY):
        preds.append(learner.learn(stream.images[s:s + _PROGRESS_EVERY], stream.labels[s:s + _PROGRESS_EVERY]))
        done = min(s + _PROGRESS_EVERY, len(stream))
        print(f"  {job.system}: {done}/{len(stream)} samples, {time.perf_counter() - start:.0f}s",
              file=sys.stderr, flush=True)
    train_seconds = time.perf_counter() - start
    correct = np.concatenate(preds) == stream.labels
    test_start = time.perf_counter()
    test_preds = learner.predict(test_images)
    test_seconds = time.perf_counter() - test_start
    test_ok = test_preds == test_labels
    per_class = [float(test_ok[test_labels == c].mean()) for c in np.unique(test_labels)]
    return {
        "name": job.system,
        "train_samples": len(stream),
        "prequential_accuracy": float(correct.mean()),
        "test_accuracy": float(test_ok.mean()),
        "test_samples": len(test_labels),
        "test_accuracy_per_class": per_class,
        "samples_per_second": len(stream) / train_seconds,
        "train_seconds": train_seconds,
        "test_seconds": test_seconds,
        "peak_rss_mb": _rss_mb(),
        "baseline_rss_mb": baseline,
        "notes": learner.notes,
        **learner.extra(),
        "correct": correct,
    }


def _run_job_safely(job: Job) -> dict[str, Any]:
    try:
        return run_system(job)
    except Exception as exc:  # reported per system; the other systems' results still count
        return {"name": job.system, "error": f"{type(exc).__name__}: {exc}"}


def iter_isolated(jobs: list[Job], processes: int):
    """Run each job in its own freshly spawned process (peak RSS per system); yields the results
    in job order as they complete."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes=processes, maxtasksperchild=1) as pool:
        yield from pool.imap(_run_job_safely, jobs, chunksize=1)


# ---------------------------------------------------------------------------------- metrics
def trailing_accuracy(correct: np.ndarray, window: int) -> np.ndarray:
    """Accuracy over the last ``window`` samples at every position (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0], correct.astype(np.int64)]))
    ends = np.arange(1, len(correct) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def recovery_samples(correct: np.ndarray, drift_at: int, window: int,
                     target: float = RECOVERY_ACCURACY) -> int | None:
    """Samples after ``drift_at`` until a ``window`` lying wholly after it first scores above
    ``target``; None if that never happens within the stream.

    >>> recovery_samples(np.array([1] * 10 + [0] * 3 + [1] * 20, bool), drift_at=10, window=5)
    8
    """
    after = correct[drift_at:].astype(np.int64)
    if len(after) < window:
        return None
    sums = np.cumsum(np.concatenate([[0], after]))
    window_acc = (sums[window:] - sums[:-window]) / window
    hits = np.flatnonzero(window_acc > target)
    return int(hits[0]) + window if len(hits) else None


def windows_after(correct: np.ndarray, drift_at: int, window: int, count: int = DRIFT_WINDOWS) -> list[float]:
    """Accuracy in consecutive ``window``-sized windows after ``drift_at`` (as many as fit)."""
    after = correct[drift_at:]
    return [float(after[i * window:(i + 1) * window].mean()) for i in range(min(count, len(after) // window))]


# ---------------------------------------------------------------------------------- report
def _fmt(value: float | None, pattern: str = "{:.4f}") -> str:
    return "—" if value is None else pattern.format(value)


def markdown_report(report: dict[str, Any]) -> str:
    lines = [f"### Scenario `{report['scenario']}` — {report['train_samples']:,} training samples, "
             f"{report['test_samples']:,} test samples, seed {report['seed']}",
             "",
             "| system | samples | prequential acc. | test acc. | samples/s | peak RSS (MB) | notes |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for s in report["systems"]:
        if "error" in s:
            lines.append(f"| {s['name']} | — | — | — | — | — | failed: {s['error']} |")
            continue
        lines.append(f"| {s['name']} | {s['train_samples']:,} | {_fmt(s['prequential_accuracy'])} | "
                     f"{_fmt(s['test_accuracy'])} | {s['samples_per_second']:,.0f} | {s['peak_rss_mb']:,.0f} | "
                     f"{s['notes']} |")
    ok = [s for s in report["systems"] if "error" not in s]
    if report["scenario"] == "class-incremental" and ok:
        classes = len(ok[0]["test_accuracy_per_class"])
        lines += ["", "Test accuracy per class after the class-ordered stream:", "",
                  "| system | " + " | ".join(str(c) for c in range(classes)) + " |",
                  "|---|" + "---:|" * classes]
        lines += [f"| {s['name']} | " + " | ".join(f"{a:.3f}" for a in s["test_accuracy_per_class"]) + " |" for s in ok]
    if report["scenario"] == "drift" and ok:
        w = report["window"]
        lines += ["", f"Accuracy in consecutive {w}-sample windows after each system's drift point, and "
                      f"samples until a trailing {w}-sample window is above {RECOVERY_ACCURACY:.0%}:", "",
                  "| system | " + " | ".join(f"+{(i + 1) * w:,}" for i in range(DRIFT_WINDOWS)) + " | recovery |",
                  "|---|" + "---:|" * (DRIFT_WINDOWS + 1)]
        for s in ok:
            cells = [f"{a:.3f}" for a in s["windows_after_drift"]] + ["—"] * (DRIFT_WINDOWS - len(s["windows_after_drift"]))
            lines.append(f"| {s['name']} | " + " | ".join(cells) + f" | {_fmt(s['recovery_samples'], '{:,}')} |")
        lines += ["", f"`recovery_samples` (hebb-mnist): {_fmt(report['recovery_samples'], '{:,}')}"]
    lines += ["", f"Machine: {report['machine']}. Command: `{report['command']}`"]
    reused = [s for s in ok if "reused_from" in s]

    def origin(s: dict[str, Any]) -> tuple[str, str]:
        return s["reused_from"], s.get("reused_machine", UNRECORDED)

    for command, machine in dict.fromkeys(map(origin, reused)):
        names = ", ".join(s["name"] for s in reused if origin(s) == (command, machine))
        lines.append(f"Reused from an earlier run of the same stream on {machine} (`{command}`): {names}.")
    return "\n".join(lines) + "\n"


def plot_curves(report: dict[str, Any], curves: dict[str, np.ndarray], boundaries: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    for name, acc in curves.items():
        step = max(1, len(acc) // 2_000)
        x = np.arange(1, len(acc) + 1)[::step]
        ax.plot(x, acc[::step], label=name, lw=1.6 if name.startswith("hebb-") else 1.0)
    for b in boundaries:
        ax.axvline(b, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("samples seen")
    ax.set_ylabel(f"prequential accuracy (trailing {report['window']} samples)")
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.set_title(f"hebb compare — scenario {report['scenario']}, {report['train_samples']:,} samples")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores {cpu}, {mem_gib:.0f} GiB, Python {platform.python_version()}"


def encode_bits(correct: np.ndarray) -> str:
    """Per-sample correctness, packed for the JSON report (so a later run can reuse it)."""
    return base64.b64encode(np.packbits(correct.astype(bool)).tobytes()).decode()


def decode_bits(text: str, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8), count=count).astype(bool)


UNRECORDED = "an unrecorded machine"
# settings that must match for an earlier report's systems to be reused in a new one
_REUSE_KEYS = ("scenario", "train_samples", "test_samples", "seed", "slow_limit", "mlp_batch")


def reusable_results(previous: dict[str, Any], current: dict[str, Any], skip: list[str]) -> list[dict[str, Any]]:
    """The systems of an earlier report (minus ``skip``) if it was made with the same settings."""
    mismatched = [k for k in _REUSE_KEYS if previous.get(k) != current[k]]
    if mismatched:
        raise ValueError("the reused report differs in " + ", ".join(
            f"{k} ({previous.get(k)!r} vs {current[k]!r})" for k in mismatched))
    # a reused system keeps the command and the machine it ran with: reports are merged across runs,
    # and a later run may be on another host (the "Machine:" line describes only this run's)
    def origin(s: dict[str, Any]) -> dict[str, str]:
        if "reused_from" in s:  # reused there already (reports before 2026-11-27 kept no machine for it)
            return {"reused_from": s["reused_from"], "reused_machine": s.get("reused_machine") or UNRECORDED}
        return {"reused_from": previous.get("command", ""), "reused_machine": previous.get("machine") or UNRECORDED}

    return [s | origin(s) for s in previous["systems"]
            if s["name"] not in skip and "error" not in s and "correct_bits" in s]


def compare(data_dir: str, scenario: str, limit: int | None, systems: list[str], seed: int = 0,
            slow_limit: int | None = DEFAULT_SLOW_LIMIT, mlp_batch: int = 1, window: int = DEFAULT_WINDOW,
            processes: int = 1, test_limit: int | None = None, command: str = "",
            reuse: list[dict[str, Any]] = (),
            checkpoint: Callable[[dict[str, Any]], None] | None = None,
            ) -> tuple[dict[str, Any], dict[str, np.ndarray], Stream]:
    """Run ``systems`` on ``scenario``; returns the report, each system's per-sample correctness
    and the (full-length) stream. With ``reuse`` (earlier reports of the same settings), their
    other systems are added to this one without being run again (the first report wins).
    ``checkpoint`` is called with a partial report (``"complete": false``, reusable) after each
    system, so a long run that is interrupted keeps the systems it finished."""
    from model.data import load_dataset

    stream = build_stream(load_dataset(data_dir), scenario, limit, seed)
    settings = {"scenario": scenario, "train_samples": len(stream), "test_samples": len(stream.test_labels[:test_limit]),
                "seed": seed, "slow_limit": slow_limit, "mlp_batch": mlp_batch}
    machine = machine_description()
    reused: list[dict[str, Any]] = []
    for previous in reuse:
        reused += reusable_results(previous, settings, list(systems) + [r["name"] for r in reused])
    jobs = []
    for name in systems:
        system_limit = limit
        if SYSTEMS[name].slow and slow_limit:
            system_limit = min(slow_limit, len(stream))
        jobs.append(Job(name, str(data_dir), scenario, system_limit, seed, mlp_batch, test_limit))
    results = []
    for result in iter_isolated(jobs, processes) if jobs else ():
        results.append(result)
        if checkpoint is not None:
            done = [{k: v for k, v in r.items() if k != "correct"}
                    | ({"correct_bits": encode_bits(r["correct"])} if "correct" in r else {}) for r in results]
            checkpoint({**settings, "complete": False, "command": command, "machine": machine, "systems": done})
    correctness: dict[str, np.ndarray] = {}
    for result, job in zip(results, jobs):
        if "error" in result:
            continue
        correct = result.pop("correct")
        correctness[result["name"]] = correct
        result["correct_bits"] = encode_bits(correct)
        if job.limit is not None and job.limit < len(stream):
            result["notes"] = "; ".join(filter(None, [result["notes"], f"first {job.limit:,} samples of the scenario"]))
        if scenario == "drift":
            drift_at = result["train_samples"] // 2
            result["drift_at"] = drift_at
            result["windows_after_drift"] = windows_after(correct, drift_at, window)
            result["recovery_samples"] = recovery_samples(correct, drift_at, window)
    for result in reused:
        correct = decode_bits(result["correct_bits"], result["train_samples"])
        correctness[result["name"]] = correct
        if scenario == "drift":
            result["windows_after_drift"] = windows_after(correct, result["drift_at"], window)
            result["recovery_samples"] = recovery_samples(correct, result["drift_at"], window)
    order = list(SYSTEMS)
    results = sorted(results + reused, key=lambda r: order.index(r["name"]))
    correctness = {name: correctness[name] for name in order if name in correctness}
    hebb_default = next((r for r in results if r["name"] == "hebb-mnist" and "error" not in r), None)
    report = {
        **settings,
        "complete": True,
        "systems": results,
        "recovery_samples": hebb_default["recovery_samples"] if scenario == "drift" and hebb_default else None,
        "window": window,
        "recovery_accuracy": RECOVERY_ACCURACY,
        "drift_at": stream.drift_at,
        "machine": machine,
        "command": command,
    }
    return report, correctness, stream


# ---------------------------------------------------------------------------------- CLI
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _system_list(text: str) -> list[str]:
    if text.strip() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown system(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(SYSTEMS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="directory with the four MNIST IDX .gz files")
    parser.add_argument("--scenario", choices=SCENARIOS, default="iid")
    parser.add_argument("--limit", type=_positive_int, default=None,
                        help="use the first N samples of the seeded shuffle (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    parser.add_argument("--plots", type=Path, default=None,
                        help="directory for compare-<scenario>.png (accuracy vs samples) and compare-<scenario>.md")
    parser.add_argument("--systems", type=_system_list, default=list(SYSTEMS),
                        help=f"comma-separated subset of: {', '.join(SYSTEMS)} ('none': only merge --reuse)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stream and of every model")
    parser.add_argument("--slow-limit", type=int, default=DEFAULT_SLOW_LIMIT,
                        help="sample limit for the slow peers (Hoeffding tree, ARF); 0: none")
    parser.add_argument("--mlp-batch", type=_positive_int, default=1,
                        help="samples per MLPClassifier.partial_fit call (default 1: one sample per call)")
    parser.add_argument("--window", type=_positive_int, default=DEFAULT_WINDOW,
                        help="trailing window (samples) for the curves and the drift recovery")
    parser.add_argument("--test-limit", type=_positive_int, default=None,
                        help="evaluate on the first N test samples only (default: the full test set)")
    parser.add_argument("--reuse", type=Path, action="append", default=[],
                        help="JSON of an earlier run with the same settings: its systems not selected by "
                             "--systems are included without being run again (repeatable; with "
                             "--systems none only earlier results are merged)")
    parser.add_argument("--jobs", type=_positive_int, default=1,
                        help="systems run in parallel (default 1: throughput measured without contention)")


def run(args: argparse.Namespace) -> int:
    from model.data import DatasetError

    missing = sorted({SYSTEMS[n].package for n in args.systems
                      if SYSTEMS[n].package and importlib.util.find_spec(SYSTEMS[n].package) is None})
    if missing:
        names = " and ".join(_INSTALL_HINT[p] for p in missing)
        print(f"hebb compare: {names} not installed; install the extra: pip install 'hebb[compare]' "
              f"(or pick systems with --systems)", file=sys.stderr)
        return 2
    if args.scenario == "drift" and args.limit is not None and args.limit < 2:
        print("hebb compare: the drift scenario needs --limit >= 2", file=sys.stderr)
        return 2
    command = "hebb compare " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["compare"] else "hebb compare"
    reuse = []
    for path in args.reuse:
        try:
            reuse.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"hebb compare: cannot read --reuse {path}: {exc}", file=sys.stderr)
            return 2
    if not args.systems and not reuse:
        print("hebb compare: --systems none needs --reuse", file=sys.stderr)
        return 2
    def write_json(report: dict[str, Any]) -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")

    try:
        report, correctness, stream = compare(
            args.data, args.scenario, args.limit, args.systems, seed=args.seed, slow_limit=args.slow_limit or None,
            mlp_batch=args.mlp_batch, window=args.window, processes=args.jobs, test_limit=args.test_limit,
            command=command, reuse=reuse, checkpoint=write_json if args.json is not None else None)
    except (DatasetError, ValueError) as exc:
        print(f"hebb compare: {exc}", file=sys.stderr)
        return 2
    table = markdown_report(report)
    print(table)
    if args.plots is not None:
        args.plots.mkdir(parents=True, exist_ok=True)
        curves = {name: trailing_accuracy(c, args.window) for name, c in correctness.items()}
        png = args.plots / f"compare-{args.scenario}.png"
        plot_curves(report, curves, stream.boundaries(), png)
        (args.plots / f"compare-{args.scenario}.md").write_text(table)
        print(f"wrote {png} and {png.with_suffix('.md')}", file=sys.stderr)
    if args.json is not None:
        write_json(report)
    return 1 if any("error" in s for s in report["systems"]) else 0
