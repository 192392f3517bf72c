"""``/v1/models``: manage models, learn from samples (JSON or NDJSON), predict, delayed feedback."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from service.api.deps import Manager, Read, Write
from service.api.errors import APIError, invalid_from_validation
from service.api.responses import JSON
from service.api.schemas import (CheckpointInfo, CreateModel, FeedbackIn, FeedbackOut, ModelInfo, ModelList,
                                 PredictIn, PredictOut, SampleIn, SamplesIn, SamplesOut, StoredPredictionOut)
from service.errors import InvalidInput
from service.inputs import sample_pixels
from service.manager import ModelManager

router = APIRouter(prefix="/v1/models", tags=["models"])

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonlines", "application/x-jsonlines")


def _inline_schema(model) -> dict:
    """The model's JSON schema with its ``$defs`` inlined (the body is documented by hand below)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


_SAMPLES_BODY = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": _inline_schema(SamplesIn)},
        "application/x-ndjson": {"schema": {"type": "string",
                                            "description": "one sample object (as in 'samples') per line"}}}}}


@router.post("", status_code=201, response_model=ModelInfo, dependencies=[Write])
async def create_model(body: CreateModel, manager: ModelManager = Manager):
    await manager.create_model(body.name, body.preset, body.config, body.seed)
    return JSON(await manager.info(body.name), status_code=201)


@router.get("", response_model=ModelList, dependencies=[Read])
async def list_models(manager: ModelManager = Manager):
    return JSON({"models": [await manager.info(name) for name in list(manager.models)]})


@router.get("/{name}", response_model=ModelInfo, dependencies=[Read])
async def get_model(name: str, manager: ModelManager = Manager):
    return JSON(await manager.info(name))


@router.delete("/{name}", status_code=204, dependencies=[Write])
async def delete_model(name: str, manager: ModelManager = Manager):
    await manager.delete_model(name)
    return Response(status_code=204)


@router.get("/{name}/stats", dependencies=[Read])
async def model_stats(name: str, manager: ModelManager = Manager):
    """Engine statistics: per-layer health (dead units, win-rate entropy), readout counters."""
    return JSON(await manager.stats(name))


@router.post("/{name}/checkpoints", status_code=201, response_model=CheckpointInfo, dependencies=[Write])
async def create_checkpoint(name: str, manager: ModelManager = Manager):
    """Checkpoint the model now (network state, seen sample ids, log position)."""
    manager.get(name)
    meta = await manager.checkpoint(name)
    return JSON(meta.to_dict(), status_code=201)


@router.get("/{name}/checkpoints", response_model=list[CheckpointInfo], dependencies=[Read])
async def list_checkpoints(name: str, manager: ModelManager = Manager):
    manager.get(name)
    return JSON([meta.to_dict() for meta in await manager.store.list_checkpoints(name)])


def parse_samples(body: bytes, content_type: str) -> list[SampleIn]:
    """A JSON ``{"samples": [...]}`` body, or NDJSON with one sample object per line."""
    media = content_type.split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        samples = []
        for number, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                samples.append(SampleIn.model_validate_json(line))
            except ValidationError as exc:
                invalid = invalid_from_validation(list(exc.errors()), ("samples", len(samples)))
                if _malformed(exc):
                    raise APIError(400, "malformed_body", f"line {number + 1}: {invalid.message}", "body") from exc
                raise InvalidInput(f"line {number + 1}: {invalid.message}", invalid.field) from exc
        if not samples:
            raise InvalidInput("samples: the NDJSON body holds no sample", "samples")
        return samples
    if media not in ("", "application/json"):
        raise APIError(415, "unsupported_media_type",
                       f"Content-Type {media!r} is not supported: use application/json or application/x-ndjson",
                       "Content-Type")
    try:
        return SamplesIn.model_validate_json(body).samples
    except ValidationError as exc:
        invalid = invalid_from_validation(list(exc.errors()))
        if _malformed(exc):
            raise APIError(400, "malformed_body", invalid.message, "body") from exc
        raise invalid from exc


def _malformed(exc: ValidationError) -> bool:
    return exc.errors()[0].get("type") == "json_invalid"


@router.post("/{name}/samples", response_model=SamplesOut, dependencies=[Write], openapi_extra=_SAMPLES_BODY)
async def learn_samples(name: str, request: Request, manager: ModelManager = Manager):
    """Each sample is predicted, then learned, in order; the predictions returned were made before
    their sample was learned. A sample whose ``id`` was learned before is skipped (idempotent retry).
    If any sample is invalid, nothing is learned."""
    model = manager.get(name)
    samples = parse_samples(await request.body(), request.headers.get("content-type", ""))
    size = model.input_size
    pixels = np.empty((len(samples), size), np.uint8)
    for i, sample in enumerate(samples):
        pixels[i] = sample_pixels(sample.x, sample.x_b64, size, f"samples[{i}]")
    outcome = await manager.learn(name, pixels, [s.label for s in samples], [s.id for s in samples])
    # numpy float32 values: orjson writes their shortest float32 form (0.1, not 0.10000000149011612)
    confidences = outcome.probabilities.max(axis=1) if outcome.accepted else []
    return JSON({"accepted": outcome.accepted, "step": outcome.step,
                 "predictions": [{"id": i, "label": label, "confidence": conf} for i, label, conf
                                 in zip(outcome.ids, outcome.predictions.tolist(), confidences)],
                 "duplicates": outcome.duplicates})


@router.post("/{name}/predict", response_model=PredictOut, dependencies=[Read])
async def predict(name: str, body: PredictIn, manager: ModelManager = Manager):
    """Predict with the latest learned state; never waits for learning in progress."""
    model = manager.get(name)
    size = model.input_size
    pixels = np.empty((len(body.inputs), size), np.uint8)
    for i, item in enumerate(body.inputs):
        pixels[i] = sample_pixels(item.x, item.x_b64, size, f"inputs[{i}]")
    outcome = await manager.predict(name, pixels, keep=body.store)
    ids = outcome.prediction_ids or [None] * len(pixels)
    return JSON({"step": outcome.step,
                 "predictions": [{"prediction_id": pid, "label": label, "probabilities": proba} for pid, label, proba
                                 in zip(ids, outcome.labels.tolist(), outcome.probabilities)]})


@router.get("/{name}/predictions/{prediction_id}", response_model=StoredPredictionOut, dependencies=[Read])
async def get_prediction(name: str, prediction_id: str, manager: ModelManager = Manager):
    item = manager.get_prediction(name, prediction_id)
    return JSON({"prediction_id": item.prediction_id, "label": item.label, "probabilities": item.probabilities,
                 "step": item.step, "created_at": item.created_at, "feedback_label": item.feedback_label,
                 "feedback_step": item.feedback_step})


@router.post("/{name}/feedback", response_model=FeedbackOut, dependencies=[Write])
async def feedback(name: str, body: FeedbackIn, manager: ModelManager = Manager):
    """Learn the stored input of a prediction with its true label (once per prediction)."""
    item, outcome = await manager.feedback(name, body.prediction_id, body.label)
    return JSON({"prediction_id": item.prediction_id, "label": item.feedback_label, "predicted": item.label,
                 "step": outcome.step})
