"""Open Inference Protocol v2 (KServe / Triton REST): health, server and model metadata, infer."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter

from service import __version__
from service.api.deps import Manager, Read
from service.api.responses import JSON
from service.api.schemas import InferRequest, InferResponse
from service.errors import InvalidInput
from service.inputs import pixels_from_array
from service.manager import ModelManager, ModelStatus

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

INPUT_DATATYPES = {"UINT8": False, "FP32": True, "FP64": True}   # datatype -> values are floats in [0, 1]
OUTPUTS = ("label", "probabilities")


@router.get("/health/live")
async def live():
    return JSON({"live": True})


@router.get("/health/ready")
async def ready(manager: ModelManager = Manager):
    is_ready = manager.ready
    return JSON({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("", dependencies=[Read])
async def server_metadata():
    return JSON({"name": "hebb", "version": __version__, "extensions": []})


@router.get("/models/{name}", dependencies=[Read])
async def model_metadata(name: str, manager: ModelManager = Manager):
    model = manager.get(name)
    h, w, c = model.input_shape
    return JSON({"name": name, "versions": ["1"], "platform": "hebb",
                 "inputs": [{"name": "input", "datatype": "UINT8", "shape": [-1, h * w * c]}],
                 "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                             {"name": "probabilities", "datatype": "FP32", "shape": [-1, model.classes]}]})


@router.get("/models/{name}/ready", dependencies=[Read])
async def model_ready(name: str, manager: ModelManager = Manager):
    is_ready = manager.get(name).status is ModelStatus.READY
    return JSON({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)


def tensor_pixels(request: InferRequest, size: int) -> np.ndarray:
    """The request's single input tensor → ``uint8[N, size]``; errors name the field."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"inputs: expected exactly 1 input tensor, got {len(request.inputs)}", "inputs")
    tensor = request.inputs[0]
    if tensor.datatype not in INPUT_DATATYPES:
        raise InvalidInput(f"inputs[0].datatype: must be one of {', '.join(INPUT_DATATYPES)}, got {tensor.datatype}",
                           "inputs[0].datatype")
    shape = tensor.shape
    if len(shape) < 2 or any(d < 0 for d in shape) or int(np.prod(shape[1:])) != size:
        raise InvalidInput(f"inputs[0].shape: must be [N, {size}] or [N, 28, 28] (values per sample {size}), "
                           f"got {shape}", "inputs[0].shape")
    try:
        data = np.asarray(tensor.data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"inputs[0].data: not a numeric array ({exc})", "inputs[0].data") from exc
    if data.dtype.kind not in "iuf" or data.dtype == np.bool_:
        raise InvalidInput("inputs[0].data: must hold numbers only", "inputs[0].data")
    if data.size != int(np.prod(shape)):
        raise InvalidInput(f"inputs[0].data: has {data.size} values, shape {shape} needs {int(np.prod(shape))}",
                           "inputs[0].data")
    floats = INPUT_DATATYPES[tensor.datatype]
    if not floats and data.dtype.kind == "f":
        raise InvalidInput("inputs[0].data: UINT8 data must be integers 0-255", "inputs[0].data")
    return pixels_from_array(data.reshape(shape[0], size), size, "inputs[0].data", floats=floats)


@router.post("/models/{name}/infer", response_model=InferResponse, dependencies=[Read])
async def infer(name: str, request: InferRequest, manager: ModelManager = Manager):
    model = manager.get(name)
    wanted = [o.name for o in request.outputs] if request.outputs else list(OUTPUTS)
    for i, out_name in enumerate(wanted):
        if out_name not in OUTPUTS:
            raise InvalidInput(f"outputs[{i}].name: unknown output {out_name!r} (available: label, probabilities)",
                               f"outputs[{i}].name")
    pixels = tensor_pixels(request, model.input_size)
    outcome = await manager.predict(name, pixels, keep=False)
    n = len(pixels)
    tensors = {"label": {"name": "label", "datatype": "INT64", "shape": [n], "data": outcome.labels.tolist()},
               "probabilities": {"name": "probabilities", "datatype": "FP32", "shape": [n, model.classes],
                                 "data": outcome.probabilities.ravel()}}
    body = {"model_name": name, "model_version": "1", "outputs": [tensors[o] for o in wanted],
            "parameters": {"step": outcome.step}}
    if request.id is not None:
        body["id"] = request.id
    return JSON(body)
