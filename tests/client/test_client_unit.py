"""SDK request shapes, retry policy and error mapping, against scripted transports (no server).
The end-to-end behaviour against the real service is in test_client_live.py."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import numpy as np
import pytest

import hebb_client
from hebb_client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    HebbError,
    InvalidInput,
    NotFound,
    ServerError,
    Unauthorized,
    Unavailable,
)
from hebb_client._base import parse_retry_after

URL = "http://hebb.test"


class Script:
    """A transport that records every request and answers from a list of handlers (the last
    handler repeats)."""

    def __init__(self, *handlers):
        self.handlers = list(handlers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.handlers[min(len(self.requests) - 1, len(self.handlers) - 1)]
        if isinstance(handler, Exception):
            raise handler
        return handler(request)

    def bodies(self) -> list:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def echo_learn(request: httpx.Request) -> httpx.Response:
    """Predict each sample's label as its first pixel value (lets tests check the id mapping)."""
    samples = json.loads(request.content)["samples"]
    predictions = [{"id": s["id"], "label": base64.b64decode(s["x_b64"])[0], "confidence": 0.5} for s in samples]
    return httpx.Response(200, json={"accepted": len(samples), "step": 1, "predictions": predictions})


def answer(status: int, body=None, headers=None):
    return lambda request: httpx.Response(status, json=body if body is not None else {}, headers=headers)


@pytest.fixture
def sleeps(monkeypatch):
    recorded: list[float] = []
    monkeypatch.setattr(hebb_client._client.time, "sleep", recorded.append)
    return recorded


def make_client(script: Script, **kwargs) -> Client:
    return Client(URL, transport=httpx.MockTransport(script), **kwargs)


def test_learn_sends_compact_batches_with_ids_and_labels():
    script = Script(echo_learn)
    X = np.arange(5 * 784, dtype=np.int64).reshape(5, 28, 28) % 251
    X = X.astype(np.uint8)
    y = np.array([3, -1, 7, 1, -1])
    with make_client(script) as client:
        predictions = client.model("digits").learn(X, y, batch_size=2)
    bodies = script.bodies()
    assert [r.url.path for r in script.requests] == ["/v1/models/digits/samples"] * 3
    assert [len(b["samples"]) for b in bodies] == [2, 2, 1]
    samples = [s for b in bodies for s in b["samples"]]
    for i, sample in enumerate(samples):
        assert np.array_equal(np.frombuffer(base64.b64decode(sample["x_b64"]), np.uint8), X[i].ravel())
        assert sample.get("label") == (None if y[i] == -1 else int(y[i]))
    ids = [s["id"] for s in samples]
    assert len(set(ids)) == 5 and len({i.rsplit("-", 1)[0] for i in ids}) == 1
    assert predictions.dtype == np.int64
    assert predictions.tolist() == X[:, 0, 0].tolist()


def test_learn_keeps_caller_ids_and_generates_fresh_ones_per_call():
    script = Script(echo_learn)
    X = np.zeros((2, 784), np.uint8)
    with make_client(script) as client:
        model = client.model("m")
        model.learn(X, ids=["a", "b"])
        model.learn(X)
        model.learn(X)
    ids = [[s["id"] for s in b["samples"]] for b in script.bodies()]
    assert ids[0] == ["a", "b"]
    assert ids[1] != ids[2] and not set(ids[1]) & set(ids[2])


def test_float_inputs_are_sent_as_the_pixels_the_service_would_read():
    script = Script(lambda r: httpx.Response(200, json={"step": 0, "predictions": [
        {"prediction_id": "p1", "label": 1, "probabilities": [0.25, 0.75]}]}))
    x = np.linspace(0.0, 1.0, 784)  # one flat sample of floats in [0, 1]
    with make_client(script) as client:
        result = client.model("m").predict(x)
    sent = script.bodies()[0]["inputs"]
    assert len(sent) == 1
    pixels = np.frombuffer(base64.b64decode(sent[0]["x_b64"]), np.uint8)
    assert np.array_equal(pixels, np.rint(x * 255.0).astype(np.uint8))  # the service's rule for floats
    assert result.labels.tolist() == [1]
    assert result.probabilities.dtype == np.float32 and result.probabilities.shape == (1, 2)
    assert result.prediction_ids == ["p1"]


def test_bad_input_is_refused_before_anything_is_sent():
    script = Script(echo_learn)
    with make_client(script) as client:
        model = client.model("m")
        with pytest.raises(InvalidInput, match="labels for 3 samples"):
            model.learn(np.zeros((3, 784), np.uint8), [1, 2])
        with pytest.raises(InvalidInput, match="label 1"):
            model.learn(np.zeros((2, 784), np.uint8), [1, 2.5])
        with pytest.raises(InvalidInput, match="0..255"):
            model.learn(np.full((1, 784), 300))
        with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
            model.predict(np.full((1, 784), 1.5))
        with pytest.raises(InvalidInput, match="unique"):
            model.learn(np.zeros((2, 784), np.uint8), ids=["a", "a"])
        with pytest.raises(InvalidInput, match="label must be"):
            model.feedback("p", -3)
    assert script.requests == []
    assert issubclass(InvalidInput, ValueError)


def test_api_key_is_sent_as_bearer_token():
    script = Script(answer(200, {"status": "ok"}))
    with make_client(script, api_key="k1") as client:
        assert client.health() is True
    assert script.requests[0].headers["authorization"] == "Bearer k1"


@pytest.mark.parametrize("status,body,kind,text", [
    (422, {"detail": "samples[2].x_b64: must decode to 784 bytes", "code": "invalid_input",
           "field": "samples[2].x_b64"}, InvalidInput, "784 bytes"),
    (400, {"detail": "body is not valid JSON"}, InvalidInput, "not valid JSON"),
    (413, {"detail": "body over 16777216 bytes"}, InvalidInput, "body over"),
    (422, {"detail": [{"loc": ["body", "samples", 0, "label"], "msg": "must be < 10"}]}, InvalidInput,
     "samples.0.label: must be < 10"),
    (401, {"detail": "missing API key"}, Unauthorized, "missing API key"),
    (403, {"detail": "read key cannot learn"}, Forbidden, "read key"),
    (404, {"detail": "no model 'x'"}, NotFound, "no model"),
    (409, {"detail": "model exists"}, Conflict, "model exists"),
    (500, {"detail": "boom"}, ServerError, "boom"),
])
def test_error_answers_raise_typed_exceptions_with_the_server_message(sleeps, status, body, kind, text):
    script = Script(answer(status, body))
    with make_client(script) as client, pytest.raises(kind, match=text) as caught:
        client.get_model("x")
    assert caught.value.status_code == status
    assert isinstance(caught.value, HebbError)
    assert caught.value.field == body.get("field") and caught.value.code == body.get("code")
    assert len(script.requests) == 1 and sleeps == []


def test_503_is_retried_honouring_retry_after_and_resends_the_same_ids(sleeps):
    script = Script(answer(503, {"detail": "busy"}, {"Retry-After": "2"}), answer(429), echo_learn)
    with make_client(script, backoff=0.1) as client:
        predictions = client.model("m").learn(np.ones((3, 784), np.uint8), [1, 1, 1])
    assert predictions.tolist() == [1, 1, 1]
    assert len(script.requests) == 3
    bodies = script.bodies()
    assert bodies[0] == bodies[1] == bodies[2]
    assert sleeps[0] == 2.0 and 0.05 <= sleeps[1] <= 0.2  # Retry-After, then backoff(attempt 1)


def test_backoff_grows_exponentially_until_retries_run_out(sleeps):
    script = Script(httpx.ConnectError("refused"))
    with make_client(script, retries=4, backoff=1.0, max_backoff=5.0) as client:
        with pytest.raises(Unavailable, match="gave up after 5 attempts"):
            client.list_models()
    assert len(script.requests) == 5
    caps = [1.0, 2.0, 4.0, 5.0]
    assert len(sleeps) == 4
    assert all(cap / 2 <= s <= cap for s, cap in zip(sleeps, caps))


def test_exhausted_status_retries_raise_unavailable_with_server_message(sleeps):
    script = Script(answer(503, {"detail": "model loading"}))
    with make_client(script, retries=2) as client, pytest.raises(Unavailable, match="model loading") as caught:
        client.model("m").predict(np.zeros((1, 784), np.uint8))
    assert caught.value.status_code == 503 and len(script.requests) == 3


def test_non_idempotent_calls_are_resent_only_when_the_server_cannot_have_acted(sleeps):
    ok = answer(200, {"prediction_id": "p", "label": 3})
    # the request never left: safe to send again
    script = Script(httpx.ConnectError("refused"), answer(503), ok)
    with make_client(script) as client:
        client.model("m").feedback("p", 3)
    assert len(script.requests) == 3
    # the connection dropped after sending: the server may have learned it; do not learn twice
    script = Script(httpx.ReadError("connection reset"), ok)
    with make_client(script) as client, pytest.raises(Unavailable, match="not idempotent"):
        client.model("m").feedback("p", 3)
    assert len(script.requests) == 1
    # a gateway timeout is ambiguous too
    script = Script(answer(504), ok)
    with make_client(script) as client, pytest.raises(Unavailable):
        client.create_model("m")
    assert len(script.requests) == 1


def test_ready_reports_503_as_not_ready_without_retrying(sleeps):
    script = Script(answer(503, {"ready": False}))
    with make_client(script) as client:
        assert client.ready() is False
    assert len(script.requests) == 1


def test_model_names_are_escaped_into_the_path():
    script = Script(answer(200, {"name": "a/b c"}))
    with make_client(script) as client:
        info = client.get_model("a/b c")
    assert script.requests[0].url.raw_path == b"/v1/models/a%2Fb%20c"
    assert info.name == "a/b c"


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert 50 < parse_retry_after(__import__("email.utils").utils.formatdate(
        __import__("time").time() + 60, usegmt=True)) <= 61


def test_async_client_shares_shapes_retries_and_errors(monkeypatch):
    slept: list[float] = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(hebb_client._async_client.asyncio, "sleep", fake_sleep)
    script = Script(httpx.ConnectError("refused"), echo_learn, answer(404, {"detail": "no such prediction"}))

    async def main():
        async with AsyncClient(URL, transport=httpx.MockTransport(script), api_key="k") as client:
            model = client.model("m")
            predictions = await model.learn(np.full((2, 784), 9, np.uint8), [9, 1])
            with pytest.raises(NotFound, match="no such prediction"):
                await model.get_prediction("nope")
            return predictions

    assert asyncio.run(main()).tolist() == [9, 9]
    assert len(slept) == 1
    assert [r.url.path for r in script.requests] == ["/v1/models/m/samples"] * 2 + ["/v1/models/m/predictions/nope"]
    assert script.requests[1].headers["authorization"] == "Bearer k"


def test_sync_and_async_clients_expose_the_same_methods():
    def public(cls):
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Client) - {"close"} == public(AsyncClient) - {"close"}
    assert public(hebb_client.Model) == public(hebb_client.AsyncModel)
    for name in public(hebb_client.AsyncModel) - {"client", "name"}:
        assert asyncio.iscoroutinefunction(getattr(hebb_client.AsyncModel, name)), name


def test_a_delete_resent_after_a_lost_answer_accepts_404_as_done(sleeps):
    script = Script(httpx.ReadError("connection reset"), answer(404, {"detail": "model 'm' not found"}))
    with make_client(script) as client:
        assert client.delete_model("m") is None
    assert [r.method for r in script.requests] == ["DELETE", "DELETE"]
    # a 404 to a first attempt, or after a refusal that proves nothing was done, is an error
    for first in (answer(404, {"detail": "model 'm' not found"}), answer(503)):
        script = Script(first, answer(404, {"detail": "model 'm' not found"}))
        with make_client(script) as client, pytest.raises(NotFound):
            client.delete_model("m")
