"""The blocking client: drives the operations of :mod:`hebb_client._base` with ``httpx.Client``."""

from __future__ import annotations

import time
from typing import Any, Sequence

import httpx
import numpy as np

from ._base import BaseClient, Operation, Request, Sleep
from ._types import ModelInfo, PredictResult, StoredPrediction


class Client(BaseClient):
    """Talks to a Hebb service.

    ``Client(url, api_key=None, timeout=60.0, retries=5)``; ``url`` and ``api_key`` default to the
    ``HEBB_URL`` and ``HEBB_API_KEY`` environment variables. Calls that fail with a connection error
    or 429/502/503/504 are retried with exponential backoff (honouring ``Retry-After``). Use as a
    context manager, or call :meth:`close`. Per-model calls live on :meth:`model` handles.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 5, *, backoff: float = 0.25, max_backoff: float = 8.0,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(url, api_key, timeout, retries, backoff, max_backoff)
        self._http = httpx.Client(base_url=self.url, headers=self._headers(), timeout=timeout, transport=transport)

    def _run(self, operation: Operation) -> Any:
        try:
            step = next(operation)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = operation.send(None)
                else:
                    step = operation.send(self._send(step))
        except StopIteration as done:
            return done.value
        finally:
            operation.close()

    def _send(self, request: Request) -> httpx.Response | httpx.TransportError:
        try:
            return self._http.request(request.method, request.path, json=request.json)
        except httpx.TransportError as exc:
            return exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def health(self) -> bool:
        """True while the service process is alive (raises :class:`Unavailable` when unreachable)."""
        return self._run(self._op_health())

    def ready(self) -> bool:
        """True when every model is loaded and caught up; False while the service is still loading."""
        return self._run(self._op_ready())

    def create_model(self, name: str, preset: str = "mnist", config: dict | None = None,
                     seed: int | None = None) -> ModelInfo:
        """Create a model from a preset plus optional config overrides; :class:`Conflict` if the name is taken."""
        return self._run(self._op_create_model(name, preset, config, seed))

    def get_model(self, name: str) -> ModelInfo:
        return self._run(self._op_get_model(name))

    def list_models(self) -> list[ModelInfo]:
        return self._run(self._op_list_models())

    def delete_model(self, name: str) -> None:
        return self._run(self._op_delete_model(name))

    def model(self, name: str) -> "Model":
        """A handle for one model's calls (learn, predict, feedback, checkpoints); sends nothing."""
        return Model(self, name)


class Model:
    """One model on the service, as reached through a :class:`Client`."""

    def __init__(self, client: Client, name: str):
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"Model({self.name!r}, url={self.client.url!r})"

    def info(self) -> ModelInfo:
        return self.client.get_model(self.name)

    def learn(self, X: Any, y: Any = None, ids: Sequence[str] | None = None, batch_size: int = 256,
              progress: bool = False) -> np.ndarray:
        """Teach the model ``X`` (uint8 pixels or floats in [0, 1], any number of samples) with labels
        ``y`` (None or -1 = unlabeled), ``batch_size`` samples per request. Returns the prequential
        predictions (int64[N]): each made just before that sample was learned. Each sample carries an
        id (``ids``, or generated per call) so a retried batch is never learned twice; samples the
        server had already learned (an earlier attempt whose answer was lost, or ids sent before)
        are skipped and get -1, since their predictions were made then."""
        return self.client._run(self.client._op_learn(self.name, X, y, ids, batch_size, progress))

    def predict(self, X: Any, batch_size: int = 1024) -> PredictResult:
        """Predict without learning: labels, class probabilities and the prediction ids."""
        return self.client._run(self.client._op_predict(self.name, X, batch_size))

    def get_prediction(self, prediction_id: str) -> StoredPrediction:
        return self.client._run(self.client._op_get_prediction(self.name, prediction_id))

    def feedback(self, prediction_id: str, label: int) -> dict:
        """Give the true label of an earlier prediction; the model learns that stored input with it."""
        return self.client._run(self.client._op_feedback(self.name, prediction_id, label))

    def checkpoint(self) -> dict:
        """Ask the service to write a checkpoint of this model now."""
        return self.client._run(self.client._op_checkpoint(self.name))

    def checkpoints(self) -> list[dict]:
        return self.client._run(self.client._op_checkpoints(self.name))
