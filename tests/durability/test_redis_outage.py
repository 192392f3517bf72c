"""Acceptance: Redis goes away under a running service and comes back — writes answer 503 with
Retry-After (nothing acknowledged that is not logged), predictions keep being served from memory,
and learning resumes without restarting the service, with no sample lost or learned twice."""

from __future__ import annotations

import base64
import time

import httpx
import pytest


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_redis_outage_gives_503_then_learning_resumes_without_restart(outage, redis_server, service_factory, stream,
                                                                      helpers, reference_digest):
    svc = service_factory(redis_server.url, HEBB_STORE_RETRY_AFTER_SECONDS=2)
    svc.wait_ready()
    http = httpx.Client(base_url=svc.url, timeout=60.0)
    assert http.post("/v1/models", json={"name": "digits", "preset": "mnist-shallow"}).status_code == 201
    assert http.post("/v1/models/digits/samples", json=helpers.batch_body(stream, 0, 300)).status_code == 200
    digest_before = http.get("/v1/models/digits").json()["state_digest"]

    redis_server.stop() if outage == "stop" else redis_server.kill()
    refused = http.post("/v1/models/digits/samples", json=helpers.batch_body(stream, 300, 400))
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "2" and refused.json()["code"] == "store_unavailable"
    feedback = http.post("/v1/models/digits/feedback", json={"prediction_id": "nope", "label": 1})
    assert feedback.status_code in (404, 503)
    x = base64.b64encode(stream.X[0].tobytes()).decode()
    served = http.post("/v1/models/digits/predict", json={"inputs": [{"x_b64": x}]})
    assert served.status_code == 200 and served.json()["step"] == 300      # predictions from memory
    assert http.get("/healthz").status_code == 200
    assert http.get("/v1/models/digits").json()["state_digest"] == digest_before   # the 503 changed nothing

    redis_server.start()                  # same port, same AOF: the log is back
    deadline = time.monotonic() + 30
    while True:                           # the client retries the refused batch with the same ids
        r = http.post("/v1/models/digits/samples", json=helpers.batch_body(stream, 300, 400))
        if r.status_code == 200:
            break
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        time.sleep(0.1)
    assert r.json()["accepted"] == 100
    assert http.post("/v1/models/digits/samples", json=helpers.batch_body(stream, 400, 600)).status_code == 200
    info = http.get("/v1/models/digits").json()
    assert info["samples_seen"] == 600 and info["state_digest"] == reference_digest(600)
    assert svc.proc.poll() is None and svc.starts == 1                      # never restarted

    # and everything acknowledged is in Redis: a fresh process recovers the same state from it
    svc.kill9()
    svc.start()
    svc.wait_ready()
    assert http.get("/v1/models/digits").json()["state_digest"] == reference_digest(600)
    http.close()


def test_service_started_before_redis_waits_then_recovers(redis_server, service_factory, stream, helpers,
                                                          reference_digest):
    svc = service_factory(redis_server.url)
    svc.wait_ready()
    assert httpx.post(f"{svc.url}/v1/models", json={"name": "digits", "preset": "mnist-shallow"},
                      timeout=60).status_code == 201
    assert httpx.post(f"{svc.url}/v1/models/digits/samples", json=helpers.batch_body(stream, 0, 200),
                      timeout=60).status_code == 200
    svc.kill9()
    redis_server.stop()

    svc.start()                             # Redis is down: the process lives, but is not ready
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{svc.url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    time.sleep(1.5)                         # a few failed attempts to read the registry
    readiness = httpx.get(f"{svc.url}/readyz", timeout=5)
    assert readiness.status_code == 503 and "StoreError" in (readiness.json()["error"] or "")

    redis_server.start()
    svc.wait_ready()
    info = httpx.get(f"{svc.url}/v1/models/digits", timeout=30).json()
    assert info["samples_seen"] == 200 and info["state_digest"] == reference_digest(200)
