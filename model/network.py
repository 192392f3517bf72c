"""The network: stacked competitive layers and a linear readout, learning one sample at a time.

>>> import numpy as np
>>> from model import Network
>>> net = Network("mnist-shallow", seed=0)
>>> rng = np.random.default_rng(0)
>>> x = rng.integers(0, 256, (28, 28), dtype=np.uint8)
>>> prediction = net.learn_one(x, 3)       # predicts first, then learns
>>> net.stats()["samples_seen"]
1
>>> net2 = Network.from_state(net.state_dict())
>>> net2.state_digest() == net.state_digest()
True
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Sequence

import numpy as np

from model.config import DEFAULT_PRESET, PRESETS, NetworkConfig, make_config
from model.drift import DriftDetector, GuardedReadout
from model.kernels import aligned_copy
from model.layers import CompetitiveLayer
from model.readout import make_readout
from model.state import StateError, digest_state, load_state, pack_state
from model.validation import as_label_array, as_sample_batch, checked_samples, samples_as_float

# samples per kernel call: large enough to amortise the call, small enough for the cache
_CHUNK = 128
# the pipelined stages of learn_many run on a pool owned by the calling thread: its workers are
# created by that thread and so inherit its scheduling priority (a service lowers its learner
# threads' priority so that requests are served first; shared workers would escape that)
_STAGE_POOLS = threading.local()


def _stage_pool() -> ThreadPoolExecutor:
    pool = getattr(_STAGE_POOLS, "pool", None)
    if pool is None:
        pool = _STAGE_POOLS.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hebb-stage")
    return pool

# batched prediction: blocks small enough that a block's intermediate maps stay in cache, spread
# over one thread per core
_PREDICT_BLOCK = 128
_MIN_PREDICT_BLOCK = 8
_PREDICT_THREADS = os.cpu_count() or 1
_PREDICT_POOL = ThreadPoolExecutor(max_workers=_PREDICT_THREADS, thread_name_prefix="hebb-predict")


class Network:
    """A deep local-learning classifier with River-style online methods."""

    def __init__(self, config: NetworkConfig | str | None = None, seed: int = 0, preset: str | None = None):
        if config is None:
            config = make_config(preset or DEFAULT_PRESET)
        elif isinstance(config, str):
            preset, config = config, make_config(config)
        if not isinstance(config, NetworkConfig):
            raise ValueError("config must be a NetworkConfig or a preset name")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.config = config
        self.preset = preset
        self.seed = int(seed)
        root = np.random.default_rng(self.seed)
        self.layers: list[CompetitiveLayer] = []
        shape = config.input_shape
        last = len(config.layers) - 1
        for i, (layer_cfg, child) in enumerate(zip(config.layers, root.spawn(len(config.layers)))):
            layer = CompetitiveLayer(layer_cfg, shape, child, emits=i < last)
            self.layers.append(layer)
            shape = layer.emission_shape
        self.n_features = sum(layer.n_features for layer in self.layers) + 1  # + bias
        self.readout = make_readout(config.readout, self.n_features, config.classes)
        self.drift = (DriftDetector(config.readout.drift_tolerance, config.readout.drift_threshold)
                      if config.readout.drift_detector == "page-hinkley" else None)
        if self.drift is not None:
            self.readout = GuardedReadout(self.readout, self.drift)
        self.samples_seen = 0
        self.labels_seen = 0
        self.correct = 0
        self.serving_only = False

    # ------------------------------------------------------------------ features
    def _features(self, feats: list[np.ndarray]) -> np.ndarray:
        n = feats[0].shape[0]
        parts = [f.reshape(n, -1) for f, layer in zip(feats, self.layers) if layer.config.readout_grid > 0]
        F = np.empty((n, self.n_features), np.float32)
        np.concatenate(parts, axis=1, out=F[:, :-1])
        power = self.config.readout.feature_power
        if power == 0.5:  # the default; sqrt is several times cheaper than a general power
            np.sqrt(F[:, :-1], out=F[:, :-1])
        elif power != 1.0:
            np.power(F[:, :-1], np.float32(power), out=F[:, :-1])
        F[:, -1] = 1.0
        return F

    def _forward_features(self, X: np.ndarray, snapshot: "Snapshot | None" = None) -> np.ndarray:
        h = X
        feats = []
        for i, layer in enumerate(self.layers):
            h, f = layer.forward(h, None if snapshot is None else snapshot.layers[i])
            feats.append(f)
        return self._features(feats)

    # ------------------------------------------------------------------ learning
    def learn_one(self, x: Any, y: int | None = None) -> int:
        """Predict ``x`` (the prequential prediction), then learn from it; returns the prediction."""
        return int(self.learn_many(np.asarray(x)[None], None if y is None else [y])[0])

    def learn_many(self, X: Any, y: Sequence[int | None] | np.ndarray | None = None) -> np.ndarray:
        """Exactly ``[learn_one(x, t) for x, t in zip(X, y)]``, faster; ``None``/-1 = unlabeled."""
        return self.learn_many_scores(X, y)[0]

    def learn_many_scores(self, X: Any, y=None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`learn_many`, also returning the prequential class probabilities.

        Layer ``l`` learns from its own input stream only, so the stages are pipelined: while
        layer 2 processes chunk ``c``, layer 1 already processes chunk ``c+1`` on another core.
        Every stage still sees its samples one at a time and in order, so the result is exactly
        that of ``learn_one`` in a loop.
        """
        if self.serving_only:
            raise RuntimeError("this network was built from a serving state: it predicts but cannot learn")
        batch = as_sample_batch(X, self.config.input_shape)
        labels = as_label_array(y, len(batch), self.config.classes)
        preds = np.empty(len(batch), np.int64)
        probas = np.empty((len(batch), self.config.classes), np.float32)
        base = self.samples_seen
        bounds = [(start, min(start + _CHUNK, len(batch))) for start in range(0, len(batch), _CHUNK)]
        inputs = [batch[a:b] for a, b in bounds]
        feats: list[list[np.ndarray]] = [[] for _ in bounds]

        def layer_stage(level: int, c: int) -> None:
            inputs[c], f = self.layers[level].learn(inputs[c], base + bounds[c][0])
            feats[c].append(f)

        def readout_stage(c: int) -> None:
            a, b = bounds[c]
            chunk_labels = labels[a:b]
            scores = self.readout.learn_many(self._features(feats[c]), chunk_labels)
            inputs[c] = feats[c] = None  # free the chunk's buffers early
            preds[a:b] = scores.argmax(axis=1)
            probas[a:b] = self._proba(scores)
            labeled = chunk_labels >= 0
            self.samples_seen += b - a
            self.labels_seen += int(labeled.sum())
            self.correct += int((preds[a:b][labeled] == chunk_labels[labeled]).sum())

        stages = [partial(layer_stage, level) for level in range(len(self.layers))] + [readout_stage]
        for step in range(len(bounds) + len(stages) - 1):
            tasks = [partial(stage, step - i) for i, stage in enumerate(stages) if 0 <= step - i < len(bounds)]
            if len(tasks) == 1:
                tasks[0]()
            else:
                for future in [_stage_pool().submit(task) for task in tasks]:
                    future.result()
        return preds, probas

    # ------------------------------------------------------------------ prediction
    def _proba(self, scores: np.ndarray) -> np.ndarray:
        z = scores / np.float32(self.config.readout.proba_temperature)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_proba_many(self, X: Any) -> np.ndarray:
        # on the live arrays: nothing learns during this call, so copying them would be wasted work
        return Snapshot(self, copy=False).predict_proba_many(X)

    def predict_many(self, X: Any) -> np.ndarray:
        return self.predict_proba_many(X).argmax(axis=1)

    def predict_proba_one(self, x: Any) -> dict[int, float]:
        proba = self.predict_proba_many(np.asarray(x)[None])[0]
        return {c: float(p) for c, p in enumerate(proba)}

    def predict_one(self, x: Any) -> int:
        return int(self.predict_many(np.asarray(x)[None])[0])

    def snapshot(self) -> "Snapshot":
        """A frozen copy of everything prediction needs; safe to use while learning continues."""
        return Snapshot(self)

    # ------------------------------------------------------------------ state
    def _arrays(self, serving: bool = False) -> dict[str, np.ndarray]:
        arrays = {}
        for i, layer in enumerate(self.layers):
            for name in layer.STATE_ARRAYS:
                arrays[f"layers.{i}.{name}"] = getattr(layer, name)
        for name in self.readout.SERVING_ARRAYS if serving else self.readout.STATE_ARRAYS:
            arrays[f"readout.{name}"] = getattr(self.readout, name)
        if self.drift is not None and not serving:
            arrays["drift.state"] = self.drift.state
        return arrays

    def _counters(self) -> dict[str, Any]:
        return {"samples_seen": self.samples_seen, "labels_seen": self.labels_seen, "correct": self.correct,
                "readout": self.readout.counters()}

    def state_dict(self, serving: bool = False) -> dict[str, Any]:
        """Versioned, pickle-free state: config, seed, counters and every learned array (copied).

        ``serving=True`` keeps only what prediction reads (the layers and the readout weights, not
        the readout's learning statistics): a fraction of the size, for prediction replicas.
        """
        return pack_state(self.config, self.preset, self.seed, self._counters(), self._arrays(serving), serving)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Network":
        """Rebuild a network from :meth:`state_dict`; one from a serving state predicts exactly like
        the original but refuses to learn (its readout statistics are not there)."""
        config, preset, seed, counters, arrays = load_state(state)
        net = cls(config, seed=seed, preset=preset)
        net.serving_only = bool(state.get("serving", False))
        expected = net._arrays(net.serving_only)
        if set(arrays) != set(expected):
            raise StateError(f"state arrays {sorted(arrays)} do not match the config's {sorted(expected)}")
        for name, current in expected.items():
            if arrays[name].shape != current.shape or arrays[name].dtype != current.dtype:
                raise StateError(f"state array {name} has shape {arrays[name].shape} {arrays[name].dtype}, "
                                 f"expected {current.shape} {current.dtype}")
        for name, array in arrays.items():
            owner, attribute = name.rsplit(".", 1)
            if owner == "readout":
                setattr(net.readout, attribute, array.copy())
            elif owner == "drift":
                net.drift.state = array.copy()
            else:
                # cache-line aligned: the kernels read the weights 16 lanes at a time
                setattr(net.layers[int(owner.split(".")[1])], attribute, aligned_copy(array))
        net.samples_seen = int(counters["samples_seen"])
        net.labels_seen = int(counters["labels_seen"])
        net.correct = int(counters["correct"])
        net.readout.load_counters(counters["readout"])
        return net

    def state_digest(self) -> str:
        """sha256 over every learned array and counter: equal digests mean identical state."""
        return digest_state(self._counters(), self._arrays())

    # ------------------------------------------------------------------ introspection
    @property
    def prequential_accuracy(self) -> float | None:
        return self.correct / self.labels_seen if self.labels_seen else None

    def stats(self) -> dict[str, Any]:
        window = self.config.dead_window
        return {
            "samples_seen": self.samples_seen,
            "labels_seen": self.labels_seen,
            "prequential_accuracy": self.prequential_accuracy,
            "layers": [layer.health(self.samples_seen, window) for layer in self.layers],
            "readout": {"rule": self.config.readout.rule, "features": self.n_features, **self.readout.counters(),
                        "drifts": 0 if self.drift is None else self.drift.drifts},
        }

    @staticmethod
    def presets() -> list[str]:
        return sorted(PRESETS)


class Snapshot:
    """Immutable copy of the arrays prediction reads; predictions run without locks against it.
    ``copy=False`` reads the network's own arrays instead (for a prediction that nothing races)."""

    def __init__(self, net: Network, copy: bool = True):
        self._net = net
        self.layers = [layer.frozen(copy) for layer in net.layers]
        self.readout_weights = net.readout.weights.copy() if copy else net.readout.weights
        self.samples_seen = net.samples_seen

    def predict_proba_many(self, X: Any) -> np.ndarray:
        batch = checked_samples(X, self._net.config.input_shape)
        out = np.empty((len(batch), self._net.config.classes), np.float32)

        def predict_block(start: int) -> None:
            F = self._net._forward_features(samples_as_float(batch[start:start + block]), self)
            out[start:start + len(F)] = self._net._proba(self._net.readout.scores(F, weights=self.readout_weights))

        # small batches are split too, so that every core works on them (a block costs a few
        # kernel calls, so not below _MIN_PREDICT_BLOCK samples)
        block = min(_PREDICT_BLOCK, max(_MIN_PREDICT_BLOCK, -(-len(batch) // _PREDICT_THREADS)))
        starts = range(0, len(batch), block)
        if len(starts) == 1:
            predict_block(0)
        else:  # blocks on every core; each sample's result does not depend on its block
            list(_PREDICT_POOL.map(predict_block, starts))
        return out

    def predict_many(self, X: Any) -> np.ndarray:
        return self.predict_proba_many(X).argmax(axis=1)
