"""The asyncio client: drives the same operations as :class:`hebb_client.Client` with
``httpx.AsyncClient``; only the I/O differs."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

import httpx
import numpy as np

from ._base import BaseClient, Operation, Request, Sleep
from ._types import ModelInfo, PredictResult, StoredPrediction


class AsyncClient(BaseClient):
    """The asyncio twin of :class:`hebb_client.Client`: same arguments, same methods, awaited."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 5, *, backoff: float = 0.25, max_backoff: float = 8.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(url, api_key, timeout, retries, backoff, max_backoff)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers(), timeout=timeout,
                                       transport=transport)

    async def _run(self, operation: Operation) -> Any:
        try:
            step = next(operation)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = operation.send(None)
                else:
                    step = operation.send(await self._send(step))
        except StopIteration as done:
            return done.value
        finally:
            operation.close()

    async def _send(self, request: Request) -> httpx.Response | httpx.TransportError:
        try:
            return await self._http.request(request.method, request.path, json=request.json)
        except httpx.TransportError as exc:
            return exc

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def health(self) -> bool:
        return await self._run(self._op_health())

    async def ready(self) -> bool:
        return await self._run(self._op_ready())

    async def create_model(self, name: str, preset: str = "mnist", config: dict | None = None,
                           seed: int | None = None) -> ModelInfo:
        return await self._run(self._op_create_model(name, preset, config, seed))

    async def get_model(self, name: str) -> ModelInfo:
        return await self._run(self._op_get_model(name))

    async def list_models(self) -> list[ModelInfo]:
        return await self._run(self._op_list_models())

    async def delete_model(self, name: str) -> None:
        return await self._run(self._op_delete_model(name))

    def model(self, name: str) -> "AsyncModel":
        return AsyncModel(self, name)


class AsyncModel:
    """One model on the service, as reached through an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, name: str):
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"AsyncModel({self.name!r}, url={self.client.url!r})"

    async def info(self) -> ModelInfo:
        return await self.client.get_model(self.name)

    async def learn(self, X: Any, y: Any = None, ids: Sequence[str] | None = None, batch_size: int = 256,
                    progress: bool = False) -> np.ndarray:
        return await self.client._run(self.client._op_learn(self.name, X, y, ids, batch_size, progress))

    async def predict(self, X: Any, batch_size: int = 1024) -> PredictResult:
        return await self.client._run(self.client._op_predict(self.name, X, batch_size))

    async def get_prediction(self, prediction_id: str) -> StoredPrediction:
        return await self.client._run(self.client._op_get_prediction(self.name, prediction_id))

    async def feedback(self, prediction_id: str, label: int) -> dict:
        return await self.client._run(self.client._op_feedback(self.name, prediction_id, label))

    async def checkpoint(self) -> dict:
        return await self.client._run(self.client._op_checkpoint(self.name))

    async def checkpoints(self) -> list[dict]:
        return await self.client._run(self.client._op_checkpoints(self.name))
