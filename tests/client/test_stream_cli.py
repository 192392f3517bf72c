"""``hebb stream`` against a live server: streams an IDX dataset through the SDK and summarises."""

from __future__ import annotations

import json

from hebb_client import Client

from service.cli import main


def test_stream_creates_teaches_and_summarises(live_server, data_dir, model_name, tmp_path, capsys, mnist):
    summary_path = tmp_path / "summary.json"
    argv = ["stream", "--url", live_server.url, "--api-key", live_server.write_key, "--model", model_name,
            "--data", str(data_dir), "--limit", "700", "--test-limit", "300", "--create-preset", "mnist-shallow",
            "--seed", "2", "--batch-size", "128", "--json", str(summary_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert json.loads(summary_path.read_text()) == summary
    final_bar = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "learning: 100%" in final_bar and "700/700" in final_bar and "sample/s" in final_bar
    assert f"accuracy={summary['prequential_accuracy']:.4f}" in final_bar  # the running accuracy, at the end
    assert summary["samples"] == 700 and summary["test_samples"] == 300
    assert 0.5 < summary["prequential_accuracy"] <= 1.0
    assert 0.7 < summary["test_accuracy"] <= 1.0
    assert summary["samples_per_second"] > 0
    with Client(live_server.url, api_key=live_server.write_key) as client:
        info = client.get_model(model_name)
    assert (info.preset, info.seed, info.samples_seen) == ("mnist-shallow", 2, 700)
    assert summary["state_digest"] == info.state_digest

    # a second run keeps teaching the same model (the preset only applies on creation); with
    # --test-limit 0 it only learns
    assert main(argv[:-2] + ["--limit", "100", "--test-limit", "0", "--no-progress"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["samples"] == 100 and second["step"] == 800
    assert second["test_samples"] == 0 and second["test_accuracy"] is None


def test_stream_reports_errors_without_a_traceback(live_server, data_dir, model_name, tmp_path, capsys):
    assert main(["stream", "--url", live_server.url, "--api-key", live_server.write_key, "--model", model_name,
                 "--data", str(data_dir), "--limit", "10", "--no-progress"]) == 1
    assert "not found" in capsys.readouterr().err  # no --create-preset and no such model
    assert main(["stream", "--url", live_server.url, "--model", model_name, "--data", str(tmp_path)]) == 2
    assert "lacks" in capsys.readouterr().err
