"""Learn / predict / feedback round trips over HTTP against a real server."""

from __future__ import annotations

import json
import threading

import numpy as np

from model import Network


def test_learning_over_http_matches_the_engine_bit_for_bit(client, model, digits, tools):
    X, y = digits
    local = Network("mnist-shallow", seed=0)
    expected = local.learn_many(X[:300], y[:300])
    got = []
    for start in (0, 100, 250):          # uneven batches: chunking must not matter
        stop = {0: 100, 100: 250, 250: 300}[start]
        r = client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[start:stop], y[start:stop]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted"] == stop - start
        assert body["step"] == stop
        assert all(0.0 <= p["confidence"] <= 1.0 for p in body["predictions"])
        got += [p["label"] for p in body["predictions"]]
    assert got == expected.tolist()          # the prequential predictions, made before each sample was learned
    info = client.get(f"/v1/models/{model}").json()
    assert info["state_digest"] == local.state_digest()
    assert (info["samples_seen"], info["labels_seen"], info["step"]) == (300, 300, 300)
    assert abs(info["prequential_accuracy"] - local.prequential_accuracy) < 1e-12
    assert info["input_shape"] == [28, 28, 1] and info["classes"] == 10 and info["preset"] == "mnist-shallow"
    # predictions come from the learned state
    r = client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x_b64": tools.b64(x)} for x in X[300:310]]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == local.predict_many(X[300:310]).tolist()
    np.testing.assert_allclose([p["probabilities"] for p in preds], local.predict_proba_many(X[300:310]), atol=1e-6)
    assert r.json()["step"] == 300


def test_unlabeled_samples_are_learned_without_labels(client, model, digits, tools):
    X, y = digits
    body = tools.samples_body(X[:20])
    body["samples"][3]["label"] = -1
    r = client.post(f"/v1/models/{model}/samples", json=body)
    assert r.status_code == 200 and r.json()["accepted"] == 20
    info = client.get(f"/v1/models/{model}").json()
    assert (info["samples_seen"], info["labels_seen"]) == (20, 0)


def test_pixel_lists_int_and_float_are_equivalent_to_b64(client, digits, tools):
    X, y = digits
    names = ["eq-b64", "eq-int", "eq-float"]
    for name in names:
        assert client.post("/v1/models", json={"name": name, "preset": "mnist-shallow"}).status_code == 201
    try:
        client.post("/v1/models/eq-b64/samples", json=tools.samples_body(X[:30], y[:30]))
        client.post("/v1/models/eq-int/samples",
                    json={"samples": [{"x": x.tolist(), "label": int(t)} for x, t in zip(X[:30], y[:30])]})
        client.post("/v1/models/eq-float/samples",
                    json={"samples": [{"x": (x / 255.0).tolist(), "label": int(t)} for x, t in zip(X[:30], y[:30])]})
        digests = {tools.digest(client, name) for name in names}
        assert len(digests) == 1
    finally:
        for name in names:
            client.delete(f"/v1/models/{name}")


def test_sample_ids_make_retries_idempotent(client, model, digits, tools):
    X, y = digits
    ids = [f"s{i}" for i in range(50)]
    first = client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[:50], y[:50], ids)).json()
    assert first["accepted"] == 50 and first["duplicates"] == []
    before = tools.digest(client, model)
    retry = client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[:50], y[:50], ids)).json()
    assert retry["accepted"] == 0 and retry["duplicates"] == ids and retry["predictions"] == []
    assert tools.digest(client, model) == before
    # a batch overlapping old ids (and repeating a new one) learns only the new samples, once
    overlap_ids = ids[40:] + ["n1", "n2", "n1"]
    overlap = client.post(f"/v1/models/{model}/samples",
                          json=tools.samples_body(X[40:53], y[40:53], overlap_ids)).json()
    assert overlap["accepted"] == 2
    assert [p["id"] for p in overlap["predictions"]] == ["n1", "n2"]
    assert overlap["duplicates"] == ids[40:] + ["n1"]
    local = Network("mnist-shallow", seed=0)
    local.learn_many(X[:50], y[:50])
    local.learn_many(X[50:52], y[50:52])
    assert tools.digest(client, model) == local.state_digest()


def test_ndjson_ingest_equals_json(client, digits, tools):
    X, y = digits
    for name in ("nd-json", "nd-ndjson"):
        assert client.post("/v1/models", json={"name": name, "preset": "mnist-shallow"}).status_code == 201
    try:
        body = tools.samples_body(X[:40], y[:40], [f"i{i}" for i in range(40)])
        a = client.post("/v1/models/nd-json/samples", json=body).json()
        lines = "\n".join(json.dumps(s) for s in body["samples"]) + "\n\n"
        b = client.post("/v1/models/nd-ndjson/samples", content=lines.encode(),
                        headers={"content-type": "application/x-ndjson"}).json()
        assert a == b and b["accepted"] == 40
        assert tools.digest(client, "nd-json") == tools.digest(client, "nd-ndjson")
        again = client.post("/v1/models/nd-ndjson/samples", content=lines.encode(),
                            headers={"content-type": "application/x-ndjson"}).json()
        assert again["accepted"] == 0 and len(again["duplicates"]) == 40
    finally:
        for name in ("nd-json", "nd-ndjson"):
            client.delete(f"/v1/models/{name}")


def test_stored_prediction_and_delayed_feedback(client, model, digits, tools):
    X, y = digits
    client.post(f"/v1/models/{model}/samples", json=tools.samples_body(X[:100], y[:100]))
    r = client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x_b64": tools.b64(X[500])},
                                                                     {"x": X[501].tolist()}]})
    assert r.status_code == 200
    p0, p1 = r.json()["predictions"]
    assert p0["prediction_id"] != p1["prediction_id"]
    stored = client.get(f"/v1/models/{model}/predictions/{p0['prediction_id']}").json()
    assert stored["label"] == p0["label"] and stored["feedback_label"] is None and stored["step"] == 100
    np.testing.assert_allclose(stored["probabilities"], p0["probabilities"])

    fb = client.post(f"/v1/models/{model}/feedback", json={"prediction_id": p0["prediction_id"], "label": int(y[500])})
    assert fb.status_code == 200, fb.text
    assert fb.json() == {"prediction_id": p0["prediction_id"], "label": int(y[500]), "predicted": p0["label"],
                         "step": 101}
    stored = client.get(f"/v1/models/{model}/predictions/{p0['prediction_id']}").json()
    assert stored["feedback_label"] == int(y[500]) and stored["feedback_step"] == 101
    # the feedback learned exactly that input with that label
    local = Network("mnist-shallow", seed=0)
    local.learn_many(X[:100], y[:100])
    local.learn_many(X[500:501], y[500:501])
    assert tools.digest(client, model) == local.state_digest()
    # at most once per prediction
    again = client.post(f"/v1/models/{model}/feedback", json={"prediction_id": p0["prediction_id"], "label": 1})
    assert again.status_code == 409 and again.json()["field"] == "prediction_id"
    assert tools.digest(client, model) == local.state_digest()


def test_predict_without_storing(client, model, digits, tools):
    X, _ = digits
    r = client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x_b64": tools.b64(X[0])}], "store": False})
    assert r.status_code == 200 and r.json()["predictions"][0]["prediction_id"] is None


def test_predictions_do_not_wait_for_a_long_learn_batch(client, server, model, digits, tools):
    X, y = digits
    n = 3000                                     # seconds of learning
    big = tools.samples_body(np.concatenate([X, X])[:n], np.concatenate([y, y])[:n])
    done = {}

    def learn():
        import httpx
        done["response"] = httpx.post(f"{server.url}/v1/models/{model}/samples", json=big, timeout=120)

    learner = threading.Thread(target=learn)
    learner.start()
    queued = f'hebb_learn_queue_samples{{model="{model}"}} {float(n)}'
    for _ in range(1000):                        # wait until the batch is queued / being learned
        if queued in client.get("/metrics").text or not learner.is_alive():
            break
    r = client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x_b64": tools.b64(X[0])}]})
    predicted_while_learning = learner.is_alive()
    learner.join()
    assert r.status_code == 200
    assert predicted_while_learning, "the prediction waited for the learn batch"
    assert r.json()["step"] < n
    assert done["response"].status_code == 200 and done["response"].json()["step"] == n
