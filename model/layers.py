"""A convolution-like competitive layer: local receptive fields, per-position competition,
winners-only local updates, per-neuron adaptive rate and homeostatic threshold."""

from __future__ import annotations

import math

import numpy as np

from model import kernels
from model.config import LayerConfig
from model.rules.scaled import effective_weights

_MODES = {"hard": kernels.COMP_HARD, "kwta": kernels.COMP_KWTA, "soft": kernels.COMP_SOFT}
_RULES = {"instar": kernels.RULE_INSTAR, "oja": kernels.RULE_OJA}


class CompetitiveLayer:
    """One layer's learned state and the calls into its kernels.

    The input of a layer is a ``(H, W, C)`` map; its emission is the max-pooled competition
    output ``(PH, PW, K)`` and its readout features the sum-pooled triangle code ``(G, G, K)``.
    """

    STATE_ARRAYS = ("vectors", "scales", "sq_norms", "thresholds", "wins", "last_win")

    def __init__(self, config: LayerConfig, input_shape: tuple[int, int, int], rng: np.random.Generator,
                 emits: bool = True):
        self.config = config
        self.input_shape = tuple(int(v) for v in input_shape)
        h, w, c = self.input_shape
        k, s = config.kernel, config.stride
        self.out_hw = ((h - k) // s + 1, (w - k) // s + 1)
        self.n_in = k * k * c
        self.emission_shape = (max(1, self.out_hw[0] // config.pool), max(1, self.out_hw[1] // config.pool), config.channels)
        # the last layer's emission is read by nobody: skip computing it
        self._emit_shape = self.emission_shape if emits else (0, 0, config.channels)
        self.feature_shape = (config.readout_grid, config.readout_grid, config.channels)
        # non-negative unit-norm initial weights: inputs are non-negative, so every unit can win
        weights = rng.random((self.n_in, config.channels), dtype=np.float32) + np.float32(0.05)
        self.vectors = kernels.aligned_copy((weights / np.linalg.norm(weights, axis=0, keepdims=True)).astype(np.float32))
        self.scales = kernels.aligned_copy(np.ones(config.channels, np.float32))
        self.sq_norms = (self.vectors.astype(np.float64) ** 2).sum(axis=0)
        self.thresholds = kernels.aligned_copy(np.zeros(config.channels, np.float32))
        self.wins = np.zeros(config.channels, np.float64)
        self.last_win = np.zeros(config.channels, np.int64)

    @property
    def weights(self) -> np.ndarray:
        """Dense effective weights ``float32[n_in, K]`` (unit-norm columns under instar)."""
        return effective_weights(self.vectors, self.scales)

    @property
    def n_features(self) -> int:
        return int(np.prod(self.feature_shape))

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        # uninitialised: the kernels clear each sample's maps before writing them
        return tuple(kernels.aligned_empty(n * math.prod(shape), np.float32).reshape(n, *shape)
                     for shape in (self._emit_shape, self.feature_shape))

    def _scratch(self, X: np.ndarray) -> tuple:
        # allocated here, not in the kernel: the kernels work on unowned views (model.nrt) of
        # arrays their caller keeps alive
        c = self.config
        cells = self._emit_shape[:2] if c.pool_mode == "winner" else (0, 0)
        return kernels.forward_scratch(X, c.kernel, c.stride, self.n_in, c.channels, _MODES[c.competition.mode],
                                       c.competition.k, cells)

    def _geometry(self) -> tuple:
        c = self.config
        return (c.kernel, c.stride, c.pool, c.readout_grid, _MODES[c.competition.mode], c.competition.k,
                np.float32(c.competition.temperature), np.float32(c.min_input_norm), c.pool_mode == "winner")

    def learn(self, X: np.ndarray, sample0: int) -> tuple[np.ndarray, np.ndarray]:
        """Forward then update, sample by sample; returns (emissions, features) per sample."""
        out, feats = self._buffers(X.shape[0])
        p = self.config.plasticity
        kernels.layer_learn_chunk(
            X, self.vectors, self.scales, self.sq_norms, self.thresholds, self.wins, self.last_win, np.int64(sample0),
            *self._geometry(), _RULES[self.config.rule],
            p.lr0, p.lr_halflife, p.lr_min, p.homeostasis, p.consolidation, out, feats, self._scratch(X))
        return out, feats

    def frozen(self, copy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The arrays the forward pass reads (copies, for a prediction snapshot, unless ``copy=False``)."""
        arrays = (self.vectors, self.scales, self.thresholds)
        return tuple(kernels.aligned_copy(a) for a in arrays) if copy else arrays

    def forward(self, X: np.ndarray, frozen: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forward pass without learning, optionally on a snapshot (thread-safe: no GIL, no shared writes)."""
        out, feats = self._buffers(X.shape[0])
        vectors, scales, thresholds = frozen or (self.vectors, self.scales, self.thresholds)
        kernels.layer_forward_chunk(X, vectors, scales, thresholds, *self._geometry(), out, feats, self._scratch(X))
        return out, feats

    def dead_fraction(self, samples_seen: int, window: int) -> float:
        if samples_seen < window:
            return 0.0
        return float(np.mean(samples_seen - self.last_win > window))

    def health(self, samples_seen: int, window: int) -> dict:
        total = self.wins.sum()
        if total > 0:
            p = self.wins / total
            nz = p[p > 0]
            entropy = float(-(nz * np.log(nz)).sum() / np.log(len(p)))
        else:
            entropy = 0.0
        return {
            "channels": self.config.channels,
            "dead_fraction": self.dead_fraction(samples_seen, window),
            "win_rate_entropy": entropy,
            "mean_weight_norm": float((self.scales * np.sqrt(self.sq_norms)).mean()),
            "win_rates": (self.wins / total if total > 0 else self.wins).tolist(),
        }
