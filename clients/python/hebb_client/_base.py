"""The one definition of the API: request shapes, retries and response parsing, free of I/O.

Every API call is written once, as a generator that *yields* what it needs done — ``Request``
(send this, give me the ``httpx.Response`` or the transport exception) or ``Sleep`` (wait before
retrying) — and *returns* the parsed result. :class:`hebb_client.Client` drives these generators
with blocking httpx and :class:`hebb_client.AsyncClient` with asyncio; neither knows a URL or a
JSON field. (The openai-python pattern: one base, two transports.)
"""

from __future__ import annotations

import email.utils
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Generator, Sequence
from urllib.parse import quote

import httpx
import numpy as np

from . import _encoding
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
from ._progress import LearnProgress
from ._types import ModelInfo, PredictResult, StoredPrediction

__version__ = "0.1.0"

# answers that mean "not now" rather than "no": the request was not (or may not have been) applied
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# for calls that must not run twice, only these prove the server did not act on the request
SAFE_RETRY_STATUSES = frozenset({429, 503})
# transport errors raised before the request left the machine: always safe to retry
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    # may the request be sent again after an ambiguous failure (lost response, 502/504)?
    idempotent: bool = True
    # statuses returned to the caller as answers instead of being retried or raised
    accept: frozenset[int] = field(default_factory=frozenset)
    # statuses that mean success when they answer a resend after an ambiguous failure (the lost
    # attempt may have done the work: a DELETE resent after a dropped answer finds nothing: 404)
    done_on_resend: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Request | Sleep
Outcome = httpx.Response | httpx.TransportError
Operation = Generator[Step, Any, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: after failed attempt k (from 0) wait between half and all of
    ``backoff * 2**k`` (capped at ``max_backoff``), or the server's ``Retry-After`` when it gives
    one (capped at ``max_retry_after``)."""

    retries: int = 5
    backoff: float = 0.25
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response is not None else None
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.backoff * (2 ** attempt), self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)  # jitter spreads out clients retrying together


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def error_message(body: Any, fallback: str) -> str:
    """The server's explanation from an error body: a FastAPI ``detail`` (string, or a list of
    validation items rendered as ``field.path: message``), or an ``error``/``message`` field."""
    if isinstance(body, str):
        return body or fallback
    if isinstance(body, dict):
        if "msg" in body:
            loc = [str(part) for part in body.get("loc", ()) if part != "body"]
            return f"{'.'.join(loc)}: {body['msg']}" if loc else str(body["msg"])
        for key in ("detail", "error", "message"):
            if key in body:
                return error_message(body[key], fallback)
    if isinstance(body, list) and body:
        return "; ".join(error_message(item, fallback) for item in body)
    return fallback


def raise_for_status(response: httpx.Response) -> None:
    """Map an error answer to its typed exception, carrying the server's message."""
    status = response.status_code
    if status < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = response.text
    message = error_message(body, response.reason_phrase or f"HTTP {status}")
    kind: type[HebbError]
    if status == 401:
        kind = Unauthorized
    elif status == 403:
        kind = Forbidden
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status in RETRY_STATUSES:
        kind = Unavailable
    elif status < 500:
        kind = InvalidInput
    else:
        kind = ServerError
    raise kind(message, status_code=status, body=body)


def model_path(name: str, *rest: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput("model name must be a non-empty string")
    return "/".join(["/v1/models", quote(name, safe="")] + [quote(part, safe="") for part in rest])


class BaseClient:
    """Settings shared by both clients, and every API call as an I/O-free operation."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
    ):
        url = url or os.environ.get("HEBB_URL")
        if not url:
            raise InvalidInput("no service URL: pass url=... or set HEBB_URL")
        if retries < 0:
            raise InvalidInput("retries must be >= 0")
        self.url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("HEBB_API_KEY") or None
        self.timeout = timeout
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"hebb-client/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    # -- the retry loop, once -------------------------------------------------------------------

    def _call(self, request: Request) -> Generator[Step, Outcome, httpx.Response]:
        """Send ``request`` until it gets a definite answer; return that response (2xx or one of
        ``request.accept``), raise its typed error, or raise :class:`Unavailable` when retries run out."""
        policy = self.retry_policy
        ambiguous = False  # has an earlier attempt possibly reached the server?
        for attempt in range(policy.retries + 1):
            outcome = yield request
            response = outcome if isinstance(outcome, httpx.Response) else None
            if response is not None:
                status = response.status_code
                if status < 400 or status in request.accept or (ambiguous and status in request.done_on_resend):
                    return response
                retryable = RETRY_STATUSES if request.idempotent else SAFE_RETRY_STATUSES
                if status not in retryable:
                    raise_for_status(response)
                ambiguous = ambiguous or status not in SAFE_RETRY_STATUSES
                problem = f"HTTP {status}"
            else:
                if not request.idempotent and not isinstance(outcome, NOT_SENT_ERRORS):
                    raise Unavailable(
                        f"{request.method} {request.path}: connection lost after sending ({outcome!r}); "
                        "not retried because the call is not idempotent"
                    ) from outcome
                ambiguous = ambiguous or not isinstance(outcome, NOT_SENT_ERRORS)
                problem = repr(outcome)
            if attempt == policy.retries:
                if response is not None:
                    try:
                        raise_for_status(response)
                    except HebbError as exc:
                        raise Unavailable(
                            f"{request.method} {request.path}: gave up after {attempt + 1} attempts: {exc.message}",
                            status_code=response.status_code,
                            body=exc.body,
                        ) from None
                raise Unavailable(
                    f"{request.method} {request.path}: gave up after {attempt + 1} attempts: {problem}"
                ) from (outcome if isinstance(outcome, Exception) else None)
            yield Sleep(policy.delay(attempt, response))
        raise AssertionError("unreachable")

    def _call_json(self, request: Request) -> Generator[Step, Outcome, Any]:
        response = yield from self._call(request)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise HebbError(f"{request.method} {request.path}: the server answered non-JSON: "
                            f"{response.text[:200]!r}", status_code=response.status_code) from exc

    # -- operations ------------------------------------------------------------------------------

    def _op_health(self) -> Operation:
        yield from self._call(Request("GET", "/healthz"))
        return True

    def _op_ready(self) -> Operation:
        response = yield from self._call(Request("GET", "/readyz", accept=frozenset({503})))
        return response.status_code < 400

    def _op_create_model(self, name: str, preset: str = "mnist", config: dict | None = None,
                         seed: int | None = None) -> Operation:
        if not isinstance(name, str) or not name:
            raise InvalidInput("model name must be a non-empty string")
        body: dict[str, Any] = {"name": name, "preset": preset}
        if config is not None:
            body["config"] = config
        if seed is not None:
            body["seed"] = seed
        # a lost answer to a create cannot be told from "someone else created it": no blind retry
        data = yield from self._call_json(Request("POST", "/v1/models", json=body, idempotent=False))
        return ModelInfo.from_json(data)

    def _op_get_model(self, name: str) -> Operation:
        data = yield from self._call_json(Request("GET", model_path(name)))
        return ModelInfo.from_json(data)

    def _op_list_models(self) -> Operation:
        data = yield from self._call_json(Request("GET", "/v1/models"))
        items = data.get("models", data.get("data", [])) if isinstance(data, dict) else data
        return [ModelInfo.from_json(item) for item in items]

    def _op_delete_model(self, name: str) -> Operation:
        yield from self._call(Request("DELETE", model_path(name), done_on_resend=frozenset({404})))
        return None

    def _op_learn(self, name: str, X: Any, y: Any = None, ids: Sequence[str] | None = None,
                  batch_size: int = 256, progress: bool = False) -> Operation:
        rows = _encoding.as_sample_rows(X)
        n = len(rows)
        labels = _encoding.as_label_list(y, n)
        sample_ids = _encoding.sample_ids(ids, n)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size must be a positive integer")
        path = model_path(name, "samples")
        predictions = np.full(n, -1, dtype=np.int64)
        bar = LearnProgress(n, enabled=progress)
        try:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                samples = []
                for i in range(start, stop):
                    sample = {"id": sample_ids[i], **_encoding.encode_input(rows[i])}
                    if labels[i] is not None:
                        sample["label"] = labels[i]
                    samples.append(sample)
                data = yield from self._call_json(Request("POST", path, json={"samples": samples}))
                by_id = {p.get("id"): p.get("label") for p in data.get("predictions", [])}
                for i in range(start, stop):
                    label = by_id.get(sample_ids[i])
                    if label is not None:
                        predictions[i] = label
                bar.update(predictions[start:stop], labels[start:stop])
        finally:
            bar.close()
        return predictions

    def _op_predict(self, name: str, X: Any, batch_size: int = 1024) -> Operation:
        rows = _encoding.as_sample_rows(X)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size must be a positive integer")
        path = model_path(name, "predict")
        labels: list[int] = []
        probabilities: list[list[float]] = []
        prediction_ids: list[str] = []
        step = 0
        for start in range(0, len(rows), batch_size):
            inputs = [_encoding.encode_input(row) for row in rows[start:start + batch_size]]
            data = yield from self._call_json(Request("POST", path, json={"inputs": inputs}))
            for item in data["predictions"]:
                labels.append(int(item["label"]))
                probabilities.append(item.get("probabilities") or [])
                prediction_ids.append(str(item["prediction_id"]))
            step = int(data.get("step") or 0)
        width = max((len(p) for p in probabilities), default=0)
        return PredictResult(
            labels=np.asarray(labels, dtype=np.int64),
            probabilities=np.asarray(probabilities, dtype=np.float32).reshape(len(labels), width),
            prediction_ids=prediction_ids,
            step=step,
        )

    def _op_get_prediction(self, name: str, prediction_id: str) -> Operation:
        data = yield from self._call_json(Request("GET", model_path(name, "predictions", str(prediction_id))))
        return StoredPrediction.from_json(data)

    def _op_feedback(self, name: str, prediction_id: str, label: int) -> Operation:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise InvalidInput(f"label must be a non-negative integer, got {label!r}")
        body = {"prediction_id": str(prediction_id), "label": int(label)}
        # feedback teaches the model: resend only when the server provably did not act on it
        data = yield from self._call_json(Request("POST", model_path(name, "feedback"), json=body, idempotent=False))
        return data

    def _op_checkpoint(self, name: str) -> Operation:
        # resending at worst writes one more checkpoint of the same state
        data = yield from self._call_json(Request("POST", model_path(name, "checkpoints")))
        return data

    def _op_checkpoints(self, name: str) -> Operation:
        data = yield from self._call_json(Request("GET", model_path(name, "checkpoints")))
        if isinstance(data, dict):
            return list(data.get("checkpoints", data.get("data", [])))
        return list(data or [])
