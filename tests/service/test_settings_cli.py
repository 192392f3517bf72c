"""``hebb serve`` flags and HEBB_* settings; OpenAPI docs."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from service.main import add_arguments, settings_from_args
from service.settings import Settings, parse_api_keys


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("HEBB_PORT", "9001")
    monkeypatch.setenv("HEBB_STORE", "memory://")
    monkeypatch.setenv("HEBB_MAX_BODY_BYTES", "2048")
    settings = settings_from_args(_parse(["--port", "9002", "--api-keys", "a:write", "--no-access-log"]))
    assert settings.port == 9002                 # flag wins
    assert settings.store == "memory://"         # env used when no flag
    assert settings.max_body_bytes == 2048
    assert settings.api_key_scopes() == {"a": "write"} and settings.access_log is False


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="KEY:read or KEY:write"):
        parse_api_keys("k1:admin")
    with pytest.raises(ValueError):
        Settings(workers=2)                      # models live in memory: one process
    with pytest.raises(ValueError):
        Settings(max_body_bytes=10)


def test_serve_exits_2_on_invalid_settings(tmp_path):
    r = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--api-keys", "nokey"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and "HEBB_API_KEYS" in r.stderr


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/v1/models", "/v1/models/{name}/samples", "/v1/models/{name}/predict", "/v1/models/{name}/feedback",
                 "/v1/models/{name}/predictions/{prediction_id}", "/v2/models/{name}/infer", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    content = spec["paths"]["/v1/models/{name}/samples"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(content)


def test_learner_threads_run_at_lower_priority(server, client, model):
    """HEBB_LEARNER_NICE (default +10): the model's learner thread yields the CPU to request handling."""
    from pathlib import Path
    nice = {}
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nice[task.name] = int(fields[16])          # field 19 of /proc/<pid>/task/<tid>/stat
    assert nice[str(server.proc.pid)] == 0         # the event loop (main thread) keeps the default priority
    assert 10 in nice.values()
