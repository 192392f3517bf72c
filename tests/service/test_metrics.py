"""Prometheus metrics and structured logs."""

from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_track_learning_and_serving(client, model, digits, tools):
    X, y = digits
    client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[:64], y[:64]))
    client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[64:96]))          # unlabeled
    client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x_b64": tools.b64(x)} for x in X[:3]]})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = _samples(r.text)
    label = (("model", model),)
    assert m[("hebb_samples_learned_total", label)] == 96
    assert m[("hebb_labels_learned_total", label)] == 64
    assert m[("hebb_predictions_served_total", label)] == 3
    assert m[("hebb_model_step", label)] == 96
    info = client.get(f"/v1/models/{model}").json()
    assert abs(m[("hebb_prequential_accuracy", label)] - info["prequential_accuracy"]) < 1e-9
    assert m[("hebb_model_ready", label)] == 1
    assert m[("hebb_ready", ())] == 1
    route = (("method", "POST"), ("route", "/v1/models/{name}/samples"), ("status", "200"))
    assert m[("hebb_request_duration_seconds_count", route)] >= 2
    assert all(name.startswith("hebb_") for name, _ in m if not name.startswith(("python_", "process_")))


def test_logs_are_json_lines(client, server, model):
    client.get(f"/v1/models/{model}")
    for _ in range(100):        # the access line is written just after the response is sent
        records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
        access = [r for r in records if r["logger"] == "hebb.access" and r["path"] == f"/v1/models/{model}"]
        if access:
            break
        time.sleep(0.02)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert access and access[-1]["status"] == 200 and access[-1]["route"] == "/v1/models/{name}"
    assert any(r["msg"] == "model created" and r.get("model") == model for r in records)
