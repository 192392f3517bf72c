"""``hebb loadtest`` end to end against the real server (tiny sizes: this checks the command; the
benchmark itself is run by hand — see docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_loadtest_reports_every_figure(server, client, data_dir, tmp_path):
    out = tmp_path / "lt.json"
    r = subprocess.run([sys.executable, "-m", "service.cli", "loadtest", "--url", server.url, "--data", str(data_dir),
                        "--json", str(out), "--model", "lt-test", "--preset", "mnist-shallow",
                        "--ingest-samples", "512", "--seconds", "1.5", "--clients", "4"],
                       capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    results = json.loads(out.read_text())
    assert results["ingest_samples"] == 512 and results["ingest_samples_per_second"] > 0
    assert results["predict_requests"] > 0 and results["predict_errors"] == 0
    assert 0 < results["predict_p50_ms"] <= results["predict_p99_ms"]
    # the server's own view of the same requests, from its /metrics histogram
    assert 0 < results["server_predict_p50_ms"] <= results["server_predict_p99_ms"]
    assert results["predict_requests_per_second"] > 0
    assert results["learn_samples_per_second_during_predict"] > 0
    # the model it created was removed again
    assert client.get("/v1/models/lt-test").status_code == 404
