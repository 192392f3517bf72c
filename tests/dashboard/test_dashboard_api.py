"""The dashboard's HTTP views on the real service: they agree with the engine fed the same samples."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from model import Network
from model.visualize import layer_filters_png, unit_preferred_inputs_png


@pytest.fixture(scope="module")
def client(dashboard_server):
    with httpx.Client(base_url=dashboard_server.url, timeout=60.0) as c:
        yield c


@pytest.fixture
def model(client, request):
    name = "dash-" + request.node.name[:40].replace("[", "-").replace("]", "")
    r = client.post("/v1/models", json={"name": name, "preset": "mnist-shallow", "seed": 0})
    assert r.status_code == 201, r.text
    yield name
    client.delete(f"/v1/models/{name}")


def learn(client, name, helpers, X, y=None):
    r = client.post(f"/v1/models/{name}/samples", json=helpers.samples_body(X, y))
    assert r.status_code == 200, r.text
    return [p["label"] for p in r.json()["predictions"]]


def test_views_agree_with_the_engine_fed_the_same_samples(client, model, mnist, helpers):
    X = mnist["train_images"][:700].reshape(-1, 784)
    y = mnist["train_labels"][:700].astype(np.int64)
    y[600:] = -1                                             # the last 100 are unlabeled
    predictions = []
    for start in range(0, 700, 200):
        labels = y[start:start + 200]
        predictions += learn(client, model, helpers, X[start:start + 200], labels)   # -1: unlabeled
    predictions = np.array(predictions)

    view = client.get(f"/v1/models/{model}/dashboard").json()
    assert view["step"] == view["samples_seen"] == 700 and view["labels_seen"] == 600
    labeled = y >= 0
    truth, said = y[labeled], predictions[labeled]
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (truth, said), 1)
    assert view["confusion"] == confusion.tolist()
    assert view["rolling"] == {"accuracy": pytest.approx(np.mean(truth == said)), "window": 600, "capacity": 1000}
    assert view["prequential_accuracy"] == pytest.approx(np.mean(truth == said))
    # one curve point per request here (200 samples >= the 100-sample spacing)
    expected_curve = [[200, np.mean(truth[:200] == said[:200])], [400, np.mean(truth[:400] == said[:400])],
                      [600, np.mean(truth == said)], [700, np.mean(truth == said)]]
    assert [s for s, _ in view["curve"]] == [s for s, _ in expected_curve]
    np.testing.assert_allclose([a for _, a in view["curve"]], [a for _, a in expected_curve])
    assert view["queued_samples"] == 0 and view["samples_per_second"] >= 0

    # the engine, fed the same stream, has the same state: same layer health, same pictures
    net = Network("mnist-shallow", seed=0)
    assert np.array_equal(net.learn_many(X, y), predictions)
    view = client.get(f"/v1/models/{model}/dashboard").json()    # layer health is refreshed in the background
    stats = net.stats()["layers"]
    assert len(view["layers"]) == len(stats) == 1
    for got, want in zip(view["layers"], stats):
        assert got["channels"] == want["channels"]
        assert got["dead_fraction"] == pytest.approx(want["dead_fraction"])
        assert got["mean_weight_norm"] == pytest.approx(want["mean_weight_norm"])
        np.testing.assert_allclose(got["win_rates"], want["win_rates"])
    filters = client.get(f"/v1/models/{model}/filters.png")
    assert filters.status_code == 200 and filters.headers["content-type"] == "image/png"
    assert filters.content == layer_filters_png(net)
    units = client.get(f"/v1/models/{model}/units.png")
    assert units.status_code == 200
    assert units.content == unit_preferred_inputs_png(net, X[-256:])     # the 256 most recent inputs


def test_feedback_counts_as_a_prequential_pair(client, model, mnist, helpers):
    X = mnist["train_images"][:50].reshape(-1, 784)
    learn(client, model, helpers, X, [int(v) for v in mnist["train_labels"][:50]])
    before = client.get(f"/v1/models/{model}/dashboard").json()
    r = client.post(f"/v1/models/{model}/predict", json={"inputs": [{"x_b64": helpers.b64(X[0])}]})
    prediction = r.json()["predictions"][0]
    r = client.post(f"/v1/models/{model}/feedback", json={"prediction_id": prediction["prediction_id"], "label": 3})
    assert r.status_code == 200, r.text
    after = client.get(f"/v1/models/{model}/dashboard").json()
    assert after["rolling"]["window"] == before["rolling"]["window"] + 1
    added = np.array(after["confusion"]) - np.array(before["confusion"])
    assert added.sum() == 1 and added[3].sum() == 1            # one more pair, with true label 3
    assert after["feedback_applied"] == 1 and after["predictions_served"] == 1


def test_events_stream_periodic_snapshots_then_ends(client, model, mnist, helpers):
    learn(client, model, helpers, mnist["train_images"][:20].reshape(-1, 784))
    events = []
    with client.stream("GET", f"/v1/models/{model}/events", params={"interval": 0.1, "duration": 0.55}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-store"
        kind = None
        for line in r.iter_lines():                 # ends on its own after `duration`
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
    assert 4 <= len(events) <= 7
    assert all(kind == "snapshot" and event["name"] == model and event["step"] == 20 for kind, event in events)


def test_model_list_page_and_assets(client, model):
    models = client.get("/v1/dashboard/models").json()["models"]
    assert {"name": model, "preset": "mnist-shallow", "status": "ready", "classes": 10, "step": 0} in models
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/dashboard.js">' in page.text and "http" not in page.text.split("<body>")[0]
    for asset, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media) and len(r.content) > 1000


@pytest.mark.parametrize("path", ["/static/..%2Fapp.py", "/static/.hidden.js", "/static/missing.js",
                                  "/static/index.py"])
def test_only_shipped_assets_are_served(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("view", ["dashboard", "events", "filters.png", "units.png"])
def test_unknown_model_is_404(client, view):
    r = client.get(f"/v1/models/no-such-model/{view}")
    assert r.status_code == 404 and r.json()["code"] == "model_not_found"


@pytest.mark.parametrize("param, value", [("interval", "0"), ("interval", "11"), ("interval", "soon"),
                                          ("duration", "0"), ("duration", "61")])
def test_bad_event_parameters_are_422(client, model, param, value):
    r = client.get(f"/v1/models/{model}/events", params={param: value})
    assert r.status_code == 422 and r.json()["field"] == param


def test_an_open_event_stream_does_not_hold_shutdown_up(tmp_path, helpers):
    """uvicorn waits for open responses on shutdown: streams end by themselves (default 5 s)."""
    import threading
    import time

    server = helpers.Server(tmp_path, {"HEBB_STORE": "memory://"})
    try:
        assert httpx.post(f"{server.url}/v1/models", json={"name": "s", "preset": "mnist-shallow"}).status_code == 201
        opened = threading.Event()

        def watch():
            with httpx.stream("GET", f"{server.url}/v1/models/s/events", timeout=60) as r:
                for _ in r.iter_lines():
                    opened.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert opened.wait(30)
        started = time.monotonic()
        server.stop(timeout=60)                       # SIGTERM: graceful shutdown
        assert time.monotonic() - started < 15        # not the 30 s graceful-shutdown timeout
        assert "graceful shutdown exceeded" not in server.log_path.read_text()
        watcher.join(5)
        assert not watcher.is_alive()
    finally:
        server.stop()


def test_views_need_a_read_key_when_keys_are_on(tmp_path, helpers):
    server = helpers.Server(tmp_path, {"HEBB_STORE": "memory://",
                                       "HEBB_API_KEYS": f"{helpers.WRITE_KEY}:write,{helpers.READ_KEY}:read"})
    try:
        write = {"Authorization": f"Bearer {helpers.WRITE_KEY}"}
        read = {"Authorization": f"Bearer {helpers.READ_KEY}"}
        with httpx.Client(base_url=server.url, timeout=60.0) as c:
            assert c.post("/v1/models", json={"name": "k", "preset": "mnist-shallow"}, headers=write).status_code == 201
            assert c.get("/").status_code == 200                    # the page holds no data
            assert c.get("/static/dashboard.js").status_code == 200
            for path in ("/v1/dashboard/models", "/v1/models/k/dashboard", "/v1/models/k/events",
                         "/v1/models/k/filters.png", "/v1/models/k/units.png"):
                assert c.get(path).status_code == 401, path
                assert c.get(path, params={"key": helpers.READ_KEY}).status_code == 401, path   # no keys in URLs
            assert c.get("/v1/dashboard/models", headers=read).status_code == 200
            assert c.get("/v1/models/k/filters.png", headers=read).status_code == 200
            with c.stream("GET", "/v1/models/k/events", params={"duration": 0.2}, headers=read) as r:
                assert r.status_code == 200
    finally:
        server.stop()
