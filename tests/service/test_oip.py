"""Open Inference Protocol v2 endpoints."""

from __future__ import annotations

import numpy as np
import pytest


def test_health_and_metadata(client, model):
    assert client.get("/v2/health/live").json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "hebb"
    meta = client.get(f"/v2/models/{model}").json()
    assert meta["name"] == model
    assert meta["inputs"] == [{"name": "input", "datatype": "UINT8", "shape": [-1, 784]}]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"label": "INT64", "probabilities": "FP32"}
    assert client.get(f"/v2/models/{model}/ready").json() == {"name": model, "ready": True}


def test_infer_matches_v1_predict(client, model, digits, tools):
    X, y = digits
    client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[:200], y[:200]))
    batch = X[200:205]
    v1 = client.post(f"/v1/models/{model}/predict",
                     json={"inputs": [{"x_b64": tools.b64(x)} for x in batch], "store": False}).json()
    r = client.post(f"/v2/models/{model}/infer", json={
        "id": "req-1",
        "inputs": [{"name": "input", "shape": [5, 784], "datatype": "UINT8", "data": batch.ravel().tolist()}]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == model and out["id"] == "req-1"
    tensors = {t["name"]: t for t in out["outputs"]}
    assert tensors["label"]["datatype"] == "INT64" and tensors["label"]["shape"] == [5]
    assert tensors["label"]["data"] == [p["label"] for p in v1["predictions"]]
    probs = tensors["probabilities"]
    assert probs["datatype"] == "FP32" and probs["shape"] == [5, 10]
    np.testing.assert_allclose(np.reshape(probs["data"], (5, 10)), [p["probabilities"] for p in v1["predictions"]],
                               atol=1e-6)
    # FP32 in [0, 1], shaped [N, 28, 28] and nested: same answer
    nested = (batch.reshape(5, 28, 28) / 255.0).tolist()
    r = client.post(f"/v2/models/{model}/infer", json={
        "inputs": [{"name": "input", "shape": [5, 28, 28], "datatype": "FP32", "data": nested}],
        "outputs": [{"name": "label"}]})
    assert r.status_code == 200, r.text
    assert [t["name"] for t in r.json()["outputs"]] == ["label"]
    assert r.json()["outputs"][0]["data"] == tensors["label"]["data"]


@pytest.mark.parametrize("tensor,field", [
    ({"shape": [1, 100], "datatype": "UINT8", "data": [0] * 100}, "inputs[0].shape"),
    ({"shape": [2, 784], "datatype": "UINT8", "data": [0] * 784}, "inputs[0].data"),
    ({"shape": [1, 784], "datatype": "BYTES", "data": [0] * 784}, "inputs[0].datatype"),
    ({"shape": [1, 784], "datatype": "INT64", "data": [0] * 784}, "inputs[0].datatype"),
    ({"shape": [1, 784], "datatype": "UINT8", "data": [0.5] * 784}, "inputs[0].data"),
    ({"shape": [1, 784], "datatype": "UINT8", "data": [300] * 784}, "inputs[0].data"),
    ({"shape": [1, 784], "datatype": "FP32", "data": [2.0] * 784}, "inputs[0].data"),
    ({"shape": [1, 784], "datatype": "FP32", "data": ["a"] * 784}, "inputs[0].data"),
])
def test_infer_errors_name_the_field(client, model, tensor, field):
    r = client.post(f"/v2/models/{model}/infer", json={"inputs": [{"name": "input", **tensor}]})
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert body["field"] == field and field in body["error"]


def test_infer_request_errors(client, model):
    tensor = {"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}
    r = client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor, tensor]})
    assert r.status_code == 422 and r.json()["field"] == "inputs"
    r = client.post(f"/v2/models/{model}/infer", json={"inputs": [tensor], "outputs": [{"name": "logits"}]})
    assert r.status_code == 422 and r.json()["field"] == "outputs[0].name"
    r = client.post(f"/v2/models/{model}/infer", json={"inputs": []})
    assert r.status_code == 422 and "error" in r.json()
    r = client.post("/v2/models/none/infer", json={"inputs": [tensor]})
    assert r.status_code == 404 and "none" in r.json()["error"]
