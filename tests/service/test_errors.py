"""Every error path: a clear JSON 4xx naming the field, and nothing applied (state_digest unchanged)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest


def _error(r, status, field=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["detail"] and body["code"]
    if field is not None:
        assert body["field"] == field, body
        assert field in body["detail"] or field in ("body", "Content-Type"), body
    return body


def _sample(x, label=1):
    return {"x_b64": base64.b64encode(np.asarray(x, np.uint8).tobytes()).decode(), "label": label}


BAD_SAMPLES = {
    "label out of range": ({"label": 10}, "samples[2].label"),
    "label not an int": ({"label": "3"}, "samples[2].label"),
    "label a float": ({"label": 1.5}, "samples[2].label"),
    "x_b64 too short": ({"x_b64": base64.b64encode(b"\0" * 10).decode()}, "samples[2].x_b64"),
    "x_b64 not base64": ({"x_b64": "!!!not-base64!!!"}, "samples[2].x_b64"),
    "x wrong length": ({"x_b64": None, "x": [0] * 783}, "samples[2].x"),
    "x pixel above 255": ({"x_b64": None, "x": [0] * 783 + [256]}, "samples[2].x"),
    "x negative": ({"x_b64": None, "x": [0] * 783 + [-1]}, "samples[2].x"),
    "x float above 1": ({"x_b64": None, "x": [0.5] * 783 + [1.5]}, "samples[2].x"),
    "x not numbers": ({"x_b64": None, "x": ["a"] * 784}, "samples[2].x[0]"),
    "both x and x_b64": ({"x": [0] * 784}, "samples[2]"),
    "neither x nor x_b64": ({"x_b64": None}, "samples[2]"),
    "id not a string": ({"id": 7}, "samples[2].id"),
    "id empty": ({"id": ""}, "samples[2].id"),
    "unknown field": ({"pixels": [1]}, "samples[2].pixels"),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLES))
def test_a_batch_with_one_invalid_sample_applies_nothing(client, model, digits, tools, case):
    X, y = digits
    client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[:5], y[:5]))
    before = tools.digest(client, model)
    patch, field = BAD_SAMPLES[case]
    samples = [_sample(x, int(t)) for x, t in zip(X[10:14], y[10:14])]
    samples[2] = {k: v for k, v in {**samples[2], **patch}.items() if v is not None}
    _error(client.post(f"/v1/models/{model}/samples", json={"samples": samples}), 422, field)
    assert tools.digest(client, model) == before
    # the same invalid sample in NDJSON: same answer, still nothing applied
    lines = "\n".join(json.dumps(s) for s in samples).encode()
    r = client.post(f"/v1/models/{model}/samples", content=lines, headers={"content-type": "application/x-ndjson"})
    _error(r, 422, field)
    assert "line 3" in r.json()["detail"] or r.json()["field"] == field
    assert tools.digest(client, model) == before


def test_malformed_bodies(client, model, tools):
    before = tools.digest(client, model)
    _error(client.post(f"/v1/models/{model}/samples", content=b"{not json",
                       headers={"content-type": "application/json"}), 400, "body")
    _error(client.post(f"/v1/models/{model}/samples", content=b'{"x": [1]}\n{oops',
                       headers={"content-type": "application/x-ndjson"}), 400, "body")
    _error(client.post(f"/v1/models/{model}/samples", json={"samples": []}), 422, "samples")
    _error(client.post(f"/v1/models/{model}/samples", json={}), 422, "samples")
    _error(client.post(f"/v1/models/{model}/samples", content=b"\n\n", headers={"content-type": "application/x-ndjson"}),
           422, "samples")
    _error(client.post(f"/v1/models/{model}/samples", content=b"a,b", headers={"content-type": "text/csv"}),
           415, "Content-Type")
    _error(client.post(f"/v1/models/{model}/predict", content=b"{oops", headers={"content-type": "application/json"}),
           400, "body")
    _error(client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x": [0] * 10}]}), 422, "inputs[0].x")
    _error(client.post(f"/v1/models/{model}/predict", json={"inputs": []}), 422, "inputs")
    assert tools.digest(client, model) == before


def test_body_over_the_limit_is_413(client, model, tools):
    before = tools.digest(client, model)
    big = b'{"samples": [' + b" " * (4 * 1024 * 1024 + 1) + b"]}"
    r = client.post(f"/v1/models/{model}/samples", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    # without a Content-Length (chunked upload) the limit holds too
    r = client.post(f"/v1/models/{model}/samples", content=iter([big[:3_000_000], big[3_000_000:]]),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert tools.digest(client, model) == before


def test_unknown_model_is_404_everywhere(client, digits, tools):
    X, y = digits
    for method, path, body in [("GET", "/v1/models/nope", None), ("DELETE", "/v1/models/nope", None),
                               ("POST", "/v1/models/nope/samples", tools.samples_body(X[:1], y[:1])),
                               ("POST", "/v1/models/nope/predict", {"inputs": [{"x_b64": tools.b64(X[0])}]}),
                               ("GET", "/v1/models/nope/predictions/abc", None),
                               ("POST", "/v1/models/nope/feedback", {"prediction_id": "abc", "label": 1}),
                               ("GET", "/v1/models/nope/stats", None),
                               ("GET", "/v2/models/nope", None)]:
        r = client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert "nope" in (r.json().get("detail") or r.json().get("error"))


def test_model_management_errors(client, model):
    body = _error(client.post("/v1/models", json={"name": model, "preset": "mnist-shallow"}), 409, "name")
    assert model in body["detail"]
    _error(client.post("/v1/models", json={"name": "x1", "preset": "nonsense"}), 422, "preset")
    _error(client.post("/v1/models", json={"name": "bad name!", "preset": "mnist"}), 422, "name")
    _error(client.post("/v1/models", json={"name": "x2", "seed": -1}), 422, "seed")
    _error(client.post("/v1/models", json={"preset": "mnist"}), 422, "name")
    r = client.post("/v1/models", json={"name": "x3", "preset": "mnist-shallow", "config": {"classes": 1}})
    _error(r, 422, "config.classes")
    r = client.post("/v1/models", json={"name": "x4", "preset": "mnist-shallow", "config": {"no_such_knob": 1}})
    _error(r, 422, "config.no_such_knob")
    names = [m["name"] for m in client.get("/v1/models").json()["models"]]
    assert not {"x1", "x2", "x3", "x4"} & set(names)


def test_feedback_errors(client, model, digits, tools):
    X, y = digits
    pid = client.post(f"/v1/models/{model}/predict",
                      json={"inputs": [{"x_b64": tools.b64(X[0])}]}).json()["predictions"][0]["prediction_id"]
    before = tools.digest(client, model)
    _error(client.post(f"/v1/models/{model}/feedback", json={"prediction_id": "unknown", "label": 1}),
           404, "prediction_id")
    _error(client.get(f"/v1/models/{model}/predictions/unknown"), 404, "prediction_id")
    _error(client.post(f"/v1/models/{model}/feedback", json={"prediction_id": pid, "label": 10}), 422, "label")
    _error(client.post(f"/v1/models/{model}/feedback", json={"prediction_id": pid, "label": -1}), 422, "label")
    _error(client.post(f"/v1/models/{model}/feedback", json={"prediction_id": pid}), 422, "label")
    assert tools.digest(client, model) == before


def test_expired_predictions_are_404(auth_server, tools, digits):
    import httpx
    X, _ = digits
    headers = {"Authorization": f"Bearer {tools.WRITE_KEY}"}
    with httpx.Client(base_url=auth_server.url, headers=headers, timeout=30) as c:
        assert c.post("/v1/models", json={"name": "retain", "preset": "mnist-shallow"}).status_code == 201
        ids = [c.post("/v1/models/retain/predict", json={"inputs": [{"x_b64": tools.b64(x)}]}).json()
               ["predictions"][0]["prediction_id"] for x in X[:3]]
        # retention is 2: the oldest is gone
        assert c.get(f"/v1/models/retain/predictions/{ids[0]}").status_code == 404
        r = c.post("/v1/models/retain/feedback", json={"prediction_id": ids[0], "label": 1})
        assert r.status_code == 404 and r.json()["field"] == "prediction_id"
        assert c.get(f"/v1/models/retain/predictions/{ids[2]}").status_code == 200
        c.delete("/v1/models/retain")
