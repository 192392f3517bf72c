"""Acceptance: a model fed the first 10,000 MNIST training samples over HTTP predicts the test set at >= 95%."""

from __future__ import annotations

import time

import numpy as np


def test_ten_thousand_samples_over_http_reach_95_percent(client, mnist, tools):
    X = mnist["train_images"][:10_000].reshape(-1, 784)
    y = mnist["train_labels"][:10_000]
    Xt = mnist["test_images"].reshape(-1, 784)
    yt = mnist["test_labels"]
    name = "mnist-acceptance"
    assert client.post("/v1/models", json={"name": name, "preset": "mnist-shallow", "seed": 0}).status_code == 201
    try:
        started = time.perf_counter()
        for start in range(0, len(X), 256):
            stop = start + 256
            ids = [f"train-{i}" for i in range(start, min(stop, len(X)))]
            r = client.post(f"/v1/models/{name}/samples", json=tools.samples_body(X[start:stop], y[start:stop], ids))
            assert r.status_code == 200, r.text
        learn_seconds = time.perf_counter() - started
        info = client.get(f"/v1/models/{name}").json()
        assert info["samples_seen"] == 10_000 and info["labels_seen"] == 10_000
        predicted = []
        for start in range(0, len(Xt), 1000):
            r = client.post(f"/v1/models/{name}/predict",
                            json={"inputs": [{"x_b64": tools.b64(x)} for x in Xt[start:start + 1000]], "store": False})
            assert r.status_code == 200, r.text
            predicted += [p["label"] for p in r.json()["predictions"]]
        accuracy = float(np.mean(np.asarray(predicted) == yt))
        print(f"\nHTTP: 10,000 samples learned in {learn_seconds:.1f}s; test accuracy {accuracy:.4f}; "
              f"prequential {info['prequential_accuracy']:.4f}")
        assert accuracy >= 0.95
    finally:
        client.delete(f"/v1/models/{name}")
