"""API keys: read keys may GET and predict; write keys may also learn, give feedback and manage models."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def auth(auth_server, tools, digits):
    X, y = digits
    write = {"Authorization": f"Bearer {tools.WRITE_KEY}"}
    with httpx.Client(base_url=auth_server.url, timeout=30) as c:
        assert c.post("/v1/models", json={"name": "secured", "preset": "mnist-shallow"}, headers=write).status_code == 201
        yield c, X, y
        c.delete("/v1/models/secured", headers=write)


def _calls(tools, X, y):
    one = tools.samples_body(X[:2], y[:2])
    infer = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": X[0].tolist()}]}
    reads = [("GET", "/v1/models", None), ("GET", "/v1/models/secured", None),
             ("GET", "/v1/models/secured/stats", None),
             ("POST", "/v1/models/secured/predict", {"inputs": [{"x_b64": tools.b64(X[0])}]}),
             ("GET", "/v2/models/secured", None), ("POST", "/v2/models/secured/infer", infer)]
    writes = [("POST", "/v1/models/secured/samples", one),
              ("POST", "/v1/models", {"name": "other", "preset": "mnist-shallow"}),
              ("DELETE", "/v1/models/other", None),
              ("POST", "/v1/models/secured/feedback", {"prediction_id": "whatever", "label": 1})]
    return reads, writes


def test_health_endpoints_stay_open(auth):
    c, _, _ = auth
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/metrics"):
        assert c.get(path).status_code == 200, path


def test_missing_or_unknown_key_is_401(auth, tools):
    c, X, y = auth
    reads, writes = _calls(tools, X, y)
    for method, path, body in reads + writes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {tools.WRITE_KEY}"}):
            r = c.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and r.json()["field"] == "Authorization"


def test_read_key_reads_but_may_not_write(auth, tools):
    c, X, y = auth
    read = {"Authorization": f"Bearer {tools.READ_KEY}"}
    reads, writes = _calls(tools, X, y)
    for method, path, body in reads:
        assert c.request(method, path, json=body, headers=read).status_code == 200, (method, path)
    before = c.get("/v1/models/secured", headers=read).json()["state_digest"]
    for method, path, body in writes:
        r = c.request(method, path, json=body, headers=read)
        assert r.status_code == 403, (method, path, r.text)
    assert c.get("/v1/models/secured", headers=read).json()["state_digest"] == before


def test_write_key_does_everything(auth, tools):
    c, X, y = auth
    write = {"Authorization": f"Bearer {tools.WRITE_KEY}"}
    reads, writes = _calls(tools, X, y)
    for method, path, body in reads:
        assert c.request(method, path, json=body, headers=write).status_code == 200, (method, path)
    expected = [200, 201, 204, 404]         # the last: feedback for an unknown prediction, but authorised
    assert [c.request(m, p, json=b, headers=write).status_code for m, p, b in writes] == expected
