"""Request and response bodies (they also make the OpenAPI docs at ``/docs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

Number = StrictInt | StrictFloat


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- models
class CreateModel(_Body):
    name: str = Field(description="1-64 of letters, digits, '_', '.', '-'", examples=["digits"])
    preset: str = Field("mnist", description="engine preset (mnist, mnist-fine, mnist-wide, mnist-shallow)")
    config: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's config")
    seed: StrictInt = Field(0, ge=0)


class CheckpointInfo(BaseModel):
    id: str
    step: int
    last_log_id: str | None
    config_digest: str
    created_at: float
    size: int
    checksum: str


class ModelInfo(BaseModel):
    name: str
    preset: str
    seed: int
    config: dict[str, Any]
    config_digest: str = Field(description="sha256 of the full network config the model runs (fixed at creation: "
                                           "a preset redefined later does not change it)")
    status: Literal["recovering", "ready", "stopping"]
    input_shape: list[int]
    classes: int
    samples_seen: int | None
    labels_seen: int | None
    prequential_accuracy: float | None
    step: int | None
    state_digest: str | None
    checkpoint: CheckpointInfo | None
    created_at: float
    queued_samples: int | None = None
    stored_predictions: int | None = None


class ModelList(BaseModel):
    models: list[ModelInfo]


# ----------------------------------------------------------------------------- learning
class SampleIn(_Body):
    id: str | None = Field(None, description="idempotency key: a sample id seen before is not learned again")
    x: list[Number] | None = Field(None, description="flat pixels: integers 0-255, or floats in [0, 1]")
    x_b64: str | None = Field(None, description="base64 of the uint8 pixels (784 bytes for MNIST)")
    label: StrictInt | None = Field(None, description="class, or null / -1 for unlabeled")


class SamplesIn(_Body):
    samples: list[SampleIn] = Field(min_length=1)


class LearnedPrediction(BaseModel):
    id: str | None
    label: int = Field(description="prediction made BEFORE the sample was learned (prequential)")
    confidence: float


class SamplesOut(BaseModel):
    accepted: int = Field(description="samples learned (duplicates excluded)")
    step: int = Field(description="samples the model had learned after this batch")
    predictions: list[LearnedPrediction]
    duplicates: list[str] = Field(description="ids skipped because they were learned before")


# ----------------------------------------------------------------------------- prediction
class InputIn(_Body):
    x: list[Number] | None = None
    x_b64: str | None = None


class PredictIn(_Body):
    inputs: list[InputIn] = Field(min_length=1)
    store: bool = Field(True, description="keep the predictions for GET and delayed feedback")


class PredictionOut(BaseModel):
    prediction_id: str | None
    label: int
    probabilities: list[float]


class PredictOut(BaseModel):
    step: int
    predictions: list[PredictionOut]


class StoredPredictionOut(BaseModel):
    prediction_id: str
    label: int
    probabilities: list[float]
    step: int
    created_at: float
    feedback_label: int | None
    feedback_step: int | None


class FeedbackIn(_Body):
    prediction_id: str
    label: StrictInt


class FeedbackOut(BaseModel):
    prediction_id: str
    label: int
    predicted: int = Field(description="the stored prediction's label")
    step: int


# ----------------------------------------------------------------------------- Open Inference Protocol v2
class InferTensor(BaseModel):
    name: str
    shape: list[StrictInt]
    datatype: Literal["UINT8", "FP32", "FP64", "INT64", "INT32"]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferRequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor] = Field(min_length=1)
    outputs: list[InferRequestedOutput] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[InferTensor]
