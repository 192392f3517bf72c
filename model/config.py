"""Network configuration: pydantic models and the named presets.

A config fully determines the architecture and every learning hyperparameter; together with the
seed and the sample stream it determines the learned state bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CompetitionConfig(_Strict):
    """How the channels at one position compete.

    ``hard``: the best-scoring channel wins (y=1). ``kwta``: the ``k`` best win (y=1 each).
    ``soft``: every channel gets ``y = softmax(score / temperature)``.
    """

    mode: Literal["hard", "kwta", "soft"] = "hard"
    k: int = Field(2, ge=1, description="winners per position for k-WTA")
    temperature: float = Field(0.1, gt=0, description="softmax temperature for soft-WTA")


class PlasticityConfig(_Strict):
    """Per-neuron self-regulation: a learning rate that decays with the neuron's own win count
    (``lr = max(lr_min, lr0 / (1 + wins / lr_halflife))``) and a homeostatic threshold that rises
    when the neuron wins and falls otherwise, so every neuron keeps winning sometimes. With
    ``consolidation > 0`` both the rate and the threshold steps are scaled by
    ``max(0, 1 − wins / consolidation)``: a neuron that has won that often is consolidated, its
    weights and threshold stop changing, so the features it gave earlier inputs stay what they were."""

    lr0: float = Field(0.05, gt=0, le=1)
    lr_halflife: float = Field(20.0, gt=0, description="wins after which the rate has halved")
    lr_min: float = Field(1e-4, ge=0, le=1)
    homeostasis: float = Field(0.002, ge=0, description="threshold step per win (0 disables)")
    consolidation: float = Field(0.0, ge=0, description="wins by which the neuron's plasticity (rate and "
                                 "threshold steps) has faded linearly to zero (0: never)")


class LayerConfig(_Strict):
    """One convolution-like competitive layer."""

    channels: int = Field(64, ge=2, le=4096)
    kernel: int = Field(5, ge=1, le=15, description="receptive field side (pixels of its input map)")
    stride: int = Field(1, ge=1, le=8)
    rule: Literal["instar", "oja"] = "instar"
    competition: CompetitionConfig = CompetitionConfig()
    plasticity: PlasticityConfig = PlasticityConfig()
    pool: int = Field(2, ge=1, le=8, description="pooling size of the output map fed to the next layer")
    pool_mode: Literal["max", "winner"] = Field(
        "max", description="max: a pooling cell emits every channel that won in it (the max of the competition "
                           "outputs); winner: only its best-scoring winner (a sparser input for the next layer)")
    readout_grid: int = Field(4, ge=0, le=12, description="sum-pool grid of features given to the readout (0: none)")
    min_input_norm: float = Field(1e-3, ge=0, description="patches weaker than this neither compete nor learn")


class ReadoutConfig(_Strict):
    """Linear readout over the pooled features of every layer.

    ``rls``: streaming ridge least squares. Sufficient statistics ``A = Σ λ^age f fᵀ`` and
    ``B = Σ λ^age f yᵀ`` are accumulated per labeled sample and the weights re-solved on a fixed
    schedule (after 4^k·``first_solve`` labels, then every ``solve_every``): exactly by Cholesky
    every ``exact_every`` labels, in between refined by a few conjugate-gradient steps. ``delta``: the
    delta (LMS) rule applied per labeled sample.
    """

    rule: Literal["rls", "delta"] = "rls"
    ridge: float = Field(1e-4, gt=0, description="ridge strength relative to mean feature energy")
    solve_every: int = Field(5_000, ge=1)
    first_solve: int = Field(64, ge=1)
    exact_every: int = Field(20_000, ge=1, description="labels between exact (Cholesky) solves; other solves refine by CG")
    cg_iterations: int = Field(25, ge=1, le=1000, description="conjugate-gradient steps of a refining solve")
    forgetting: float = Field(1.0, gt=0.5, le=1.0, description="per-label decay of old statistics")
    feature_power: float = Field(0.5, gt=0, le=1.0, description="features are raised to this power")
    delta_lr: float = Field(0.01, gt=0, description="delta-rule step size")
    proba_temperature: float = Field(0.1, gt=0, description="softmax temperature mapping scores to probabilities")
    drift_detector: Literal["none", "page-hinkley"] = Field(
        "none", description="reset the readout when this detector (model.drift) signals a drift in its prequential errors")
    drift_tolerance: float = Field(0.05, ge=0, lt=1, description="Page-Hinkley: tolerated rise of the error rate")
    drift_threshold: float = Field(40.0, gt=0, description="Page-Hinkley: excess errors that signal a drift")


class NetworkConfig(_Strict):
    input_shape: tuple[int, int, int] = (28, 28, 1)
    classes: int = Field(10, ge=2, le=1000)
    layers: tuple[LayerConfig, ...] = Field(min_length=1, max_length=6)
    readout: ReadoutConfig = ReadoutConfig()
    dead_window: int = Field(10_000, ge=1, description="a unit that has not won in this many samples counts as dead")

    @model_validator(mode="after")
    def _check_geometry(self) -> "NetworkConfig":
        h, w, _ = self.input_shape
        if h < 1 or w < 1 or self.input_shape[2] < 1:
            raise ValueError("input_shape must be positive")
        for i, layer in enumerate(self.layers):
            if layer.kernel > h or layer.kernel > w:
                raise ValueError(f"layers[{i}].kernel={layer.kernel} exceeds its input map {h}x{w}")
            oh = (h - layer.kernel) // layer.stride + 1
            ow = (w - layer.kernel) // layer.stride + 1
            if layer.readout_grid > min(oh, ow):
                raise ValueError(f"layers[{i}].readout_grid={layer.readout_grid} exceeds its map {oh}x{ow}")
            h, w = max(1, oh // layer.pool), max(1, ow // layer.pool)
        if all(layer.readout_grid == 0 for layer in self.layers):
            raise ValueError("at least one layer must feed the readout (readout_grid > 0)")
        return self

    def digest(self) -> str:
        """Stable hash of the config, stored with checkpoints to refuse incompatible ones."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


# layer 1 of every MNIST preset: 5x5 strokes (24x24 positions), consolidated after 10,000 own wins
_STROKES = {"channels": 64, "kernel": 5, "pool": 2, "readout_grid": 4, "plasticity": {"consolidation": 10000}}


def _three_layers(channels2: int, channels3: int, pool1: int = 2, homeostasis3: float = 0.002) -> dict[str, Any]:
    """Strokes, their 3x3 compositions on the pooled map (10x10 positions with 2x2 pooling, 6x6
    with 3x3; readout on a 2x2 grid, consolidated after 1,000 own wins), and compositions of those
    (3x3 with 2x2 pooling; summed for the readout, consolidated after 100)."""
    return {
        "layers": [
            {**_STROKES, "pool": pool1},
            {"channels": channels2, "kernel": 3, "pool": 2, "readout_grid": 2, "plasticity": {"consolidation": 1000}},
            {"channels": channels3, "kernel": 3, "pool": 1, "readout_grid": 1,
             "plasticity": {"consolidation": 100, "homeostasis": homeostasis3}},
        ],
        "readout": {"ridge": 3e-5},
    }


PRESETS: dict[str, dict[str, Any]] = {
    # three feature layers, each feeding the readout: 3,073 readout features. Layer 1 is max-pooled
    # over 3x3 (an 8x8 map), so layer 2 has 6x6 positions and layer 3 a single one, 1,024 units
    # wide. With one position per sample, layer 3's thresholds fall by only homeostasis/1,024 per
    # sample where a unit does not win: at the usual 0.002 step 44 % of its units never won again
    # (dead), at 0.05 none. Units consolidate after 10,000 / 1,000 / 100 of their own wins, so the
    # readout's statistics of early classes stay valid. The default since 2026-11-27 10:00 UTC:
    # ~1.5x the prediction throughput of mnist-fine at the same one-pass test accuracy
    # (docs/benchmarks.md)
    "mnist": _three_layers(256, 1024, pool1=3, homeostasis3=0.05),
    # layer 1 pooled 2x2 (layer 2 on 10x10 positions, layer 3 on 3x3 with 512 units; 2,561
    # readout features): the default from 2026-11-27 02:00 to 10:00 UTC; as accurate, slower to
    # predict
    "mnist-fine": _three_layers(256, 512),
    # mnist-fine's layout with wider layers 2 and 3 (3,329 readout features): the default until
    # 2026-11-27 02:00 UTC, slightly more accurate, slower to learn and to predict. Stored model
    # records of that time say "mnist" and resolve to this preset (service/stores/base.py): keep it
    # unchanged
    "mnist-wide": _three_layers(384, 768),
    # the default's first layer alone (same plasticity, consolidation included), same readout rule
    "mnist-shallow": {"layers": [_STROKES]},
}
DEFAULT_PRESET = "mnist"


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def make_config(preset: str = DEFAULT_PRESET, overrides: dict[str, Any] | None = None) -> NetworkConfig:
    """Build a config from a named preset plus nested overrides (validated; raises on bad input).

    >>> make_config("mnist-shallow").layers[0].channels
    64
    >>> make_config("mnist", {"readout": {"solve_every": 500}}).readout.solve_every
    500
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return NetworkConfig.model_validate(_merge(PRESETS[preset], overrides or {}))
