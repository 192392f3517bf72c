"""Python SDK for the Hebb online-learning service.

    from hebb_client import Client

    with Client("http://127.0.0.1:8000") as client:
        client.create_model("digits", preset="mnist")
        digits = client.model("digits")
        predictions = digits.learn(X, y)        # prequential: predicted, then learned
        result = digits.predict(X_test)         # labels, probabilities, prediction_ids
"""

from ._async_client import AsyncClient, AsyncModel
from ._base import __version__
from ._client import Client, Model
from ._exceptions import (
    Conflict,
    Forbidden,
    HebbError,
    InvalidInput,
    NotFound,
    ServerError,
    Unauthorized,
    Unavailable,
)
from ._types import ModelInfo, PredictResult, StoredPrediction

__all__ = [
    "AsyncClient", "AsyncModel", "Client", "Conflict", "Forbidden", "HebbError", "InvalidInput", "Model",
    "ModelInfo", "NotFound", "PredictResult", "ServerError", "StoredPrediction", "Unauthorized", "Unavailable",
    "__version__",
]
