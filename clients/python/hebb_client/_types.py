"""Result objects. Each keeps the decoded JSON in ``raw`` so fields the server adds later stay
reachable without an SDK release."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class ModelInfo:
    """A model's description as the service reports it (``GET /v1/models/{name}``). The learning
    counters are None while the model is still being recovered (``status == "recovering"``)."""

    name: str
    preset: str | None
    seed: int | None
    config_digest: str | None   # the full network config the model runs (fixed at creation)
    status: str | None
    input_shape: tuple[int, ...]
    classes: int
    samples_seen: int | None
    labels_seen: int | None
    prequential_accuracy: float | None
    step: int | None
    state_digest: str | None
    checkpoint: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelInfo":
        return cls(
            name=data["name"],
            preset=data.get("preset"),
            seed=_optional_int(data.get("seed")),
            config_digest=data.get("config_digest"),
            status=data.get("status"),
            input_shape=tuple(data.get("input_shape") or ()),
            classes=int(data.get("classes") or 0),
            samples_seen=_optional_int(data.get("samples_seen")),
            labels_seen=_optional_int(data.get("labels_seen")),
            prequential_accuracy=data.get("prequential_accuracy"),
            step=_optional_int(data.get("step")),
            state_digest=data.get("state_digest"),
            checkpoint=data.get("checkpoint"),
            raw=data,
        )


@dataclass(frozen=True)
class PredictResult:
    """Predictions for a batch: ``labels`` (int64[N]), ``probabilities`` (float32[N, classes]) and
    the ``prediction_ids`` to quote when giving feedback later. ``step`` is the model step the
    predictions were made at (the last batch's, when the inputs were sent in several batches)."""

    labels: np.ndarray
    probabilities: np.ndarray
    prediction_ids: list[str]
    step: int

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction kept by the service (``GET /v1/models/{name}/predictions/{id}``); ``feedback``
    is the label given for it later, or None while none was given."""

    prediction_id: str
    label: int
    probabilities: np.ndarray
    feedback: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StoredPrediction":
        feedback = data.get("feedback_label", data.get("feedback"))
        if isinstance(feedback, dict):  # tolerate {"label": ..., "at": ...}
            feedback = feedback.get("label")
        return cls(
            prediction_id=str(data["prediction_id"]),
            label=int(data["label"]),
            probabilities=np.asarray(data.get("probabilities") or [], dtype=np.float32),
            feedback=None if feedback is None else int(feedback),
            raw=data,
        )
