"""Acceptance of the scale-out roles on loopback: one AOF redis-server, 2 learners, 2 predictors.

Stream MNIST through the active learner with a tiny client-side failover over both learner URLs;
the predictors' served ``step`` catches up within 2 s; ``kill -9`` the active learner mid-stream;
the standby takes over within 15 s; the client's retries finish the stream; the final
``state_digest`` equals an uninterrupted single-process run; the predictors never answered an
error meanwhile. Default lease ttl (5 s) and publish interval (1 s)."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import numpy as np

from model import Network
from service.deploy_bench import FailoverClient

MODEL = "digits"
N_SAMPLES = 3000
BATCH = 50
KILL_AT = 1500
LAG_CHECK_AT = 1000


class PredictorWatch(threading.Thread):
    """Keeps asking a predictor for its step and a prediction; records every non-200 answer."""

    def __init__(self, url: str, sample_b64: str):
        super().__init__(daemon=True)
        self.url = url
        self.body = {"inputs": [{"x_b64": sample_b64}], "store": False}
        self.errors: list[str] = []
        self.requests = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self.halt.is_set():
                for method, path, body in (("GET", f"/v1/models/{MODEL}", None),
                                           ("POST", f"/v1/models/{MODEL}/predict", self.body)):
                    try:
                        r = client.request(method, path, json=body)
                        if r.status_code != 200:
                            self.errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
                    except httpx.HTTPError as exc:
                        self.errors.append(f"{method} {path}: {type(exc).__name__} {exc}")
                    self.requests += 1
                time.sleep(0.05)


def steps(predictors) -> list[int]:
    return [httpx.get(f"{p.url}/v1/models/{MODEL}", timeout=10.0).json()["step"] for p in predictors]


def seconds_until_predictors_reach(predictors, step: int, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(s == step for s in steps(predictors)):
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"predictors at {steps(predictors)}, not {step}, after {timeout}s")


def batch(X, y, start: int, stop: int) -> dict:
    return {"samples": [{"id": f"s{i:05d}", "label": int(y[i]), "x_b64": base64.b64encode(X[i].tobytes()).decode()}
                        for i in range(start, stop)]}


def wait_ready(proc, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(proc.url + "/readyz", timeout=5.0)
        if r.status_code == 200:
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"{proc.role} not ready: {r.json()}\n{proc.log()}")


def test_learner_failover_with_predictor_replicas(redis_server, roles, mnist):
    X = mnist["train_images"][:N_SAMPLES].reshape(-1, 784)
    y = mnist["train_labels"][:N_SAMPLES]
    reference = Network("mnist-shallow", seed=0)
    reference.learn_many(X, y)

    store = redis_server.url
    learner_a = roles.start("learner", store)
    learner_b = roles.start("learner", store)
    predictors = [roles.start("predictor", store), roles.start("predictor", store)]
    for proc in (learner_a, learner_b, *predictors):
        proc.wait_live()
    wait_ready(learner_a)

    r = httpx.post(learner_a.url + "/v1/models", json={"name": MODEL, "preset": "mnist-shallow", "seed": 0}, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json()["step"] == 0
    for proc in predictors:         # they find the new model by polling the registry
        deadline = time.monotonic() + 15
        while httpx.get(f"{proc.url}/v1/models/{MODEL}", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.1)
        wait_ready(proc)
    # the standby sees the model and refuses writes for it with a retryable 503
    deadline = time.monotonic() + 10
    while True:
        r = httpx.post(f"{learner_b.url}/v1/models/{MODEL}/samples", json=batch(X, y, 0, 1), timeout=30)
        if r.status_code == 503 and r.json()["code"] == "not_leader":
            break
        assert r.status_code == 404 and time.monotonic() < deadline, r.text   # not yet seen in the registry
        time.sleep(0.2)
    assert r.headers["Retry-After"] == "1"
    assert httpx.get(learner_b.url + "/readyz", timeout=5).status_code == 503    # pure standby: not ready
    # a predictor refuses learning and model management, naming its role
    for method, path, body in (("POST", f"/v1/models/{MODEL}/samples", batch(X, y, 0, 1)),
                               ("POST", "/v1/models", {"name": "other", "preset": "mnist-shallow"}),
                               ("DELETE", f"/v1/models/{MODEL}", None)):
        r = httpx.request(method, predictors[0].url + path, json=body, timeout=30)
        assert r.status_code == 409 and r.json()["code"] == "wrong_role" and "predictor" in r.json()["detail"], r.text

    watches = [PredictorWatch(p.url, base64.b64encode(X[-1].tobytes()).decode()) for p in predictors]
    for watch in watches:
        watch.start()
    learners = [learner_a, learner_b]
    client = FailoverClient([p.url for p in learners])
    killed_at = recovered_at = survivor = None
    lag = None
    for start in range(0, N_SAMPLES, BATCH):
        if start == LAG_CHECK_AT:
            lag = seconds_until_predictors_reach(predictors, LAG_CHECK_AT)
        if start == KILL_AT:              # the active learner: the one the client talks to
            learners[client.current].kill9()
            survivor = learners[1 - client.current]
            killed_at = time.monotonic()
            failures_before_kill = len(client.failures)
        r = client.post(f"/v1/models/{MODEL}/samples", batch(X, y, start, start + BATCH))
        assert r.status_code == 200, r.text
        assert r.json()["step"] == start + BATCH
        if killed_at is not None and recovered_at is None:
            recovered_at = time.monotonic()
    final_lag = seconds_until_predictors_reach(predictors, N_SAMPLES)
    for watch in watches:
        watch.halt.set()
        watch.join(30)

    print(f"predictor lag {lag:.2f}s, after failover {final_lag:.2f}s; takeover {recovered_at - killed_at:.2f}s "
          f"after kill -9; client failures {len(client.failures)}; predictor requests "
          f"{[w.requests for w in watches]}")
    assert lag is not None and lag <= 2.0, f"predictors lagged {lag:.2f}s"
    assert final_lag <= 2.0, f"predictors lagged {final_lag:.2f}s after the failover"
    assert recovered_at - killed_at <= 15.0, f"the standby took {recovered_at - killed_at:.1f}s to take over"
    assert client.urls[client.current] == survivor.url and len(client.failures) > failures_before_kill
    info = httpx.get(f"{survivor.url}/v1/models/{MODEL}", timeout=30).json()
    assert info["samples_seen"] == N_SAMPLES
    assert info["state_digest"] == reference.state_digest()
    readiness = httpx.get(survivor.url + "/readyz", timeout=5).json()
    assert readiness["ready"] and readiness["leading"] == [MODEL]
    for watch in watches:
        assert watch.requests > 50 and not watch.errors, watch.errors[:5]
    # every predictor serves exactly what the learner's state predicts
    probe = mnist["test_images"][:64].reshape(-1, 784)
    inputs = {"inputs": [{"x_b64": base64.b64encode(x.tobytes()).decode()} for x in probe], "store": False}
    expected = reference.predict_proba_many(probe)
    for proc in predictors:
        served = httpx.post(f"{proc.url}/v1/models/{MODEL}/predict", json=inputs, timeout=30).json()
        assert served["step"] == N_SAMPLES
        np.testing.assert_array_equal(np.array([p["probabilities"] for p in served["predictions"]], np.float32),
                                      expected)
