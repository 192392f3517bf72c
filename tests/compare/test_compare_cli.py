"""``hebb compare`` end to end on small limits of real MNIST (each system in its own process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.compare import _REUSE_KEYS, SYSTEMS, UNRECORDED, Job, compare, reusable_results, run_system
from service.cli import main

JSON_FIELDS = {"name": str, "test_accuracy": float, "prequential_accuracy": float,
               "samples_per_second": float, "peak_rss_mb": float}


def _compare(tmp_path, data_dir, *args):
    out = tmp_path / "out.json"
    code = main(["compare", "--data", str(data_dir), "--json", str(out), "--plots", str(tmp_path / "plots"),
                 "--test-limit", "400", "--jobs", "2", *args])
    return code, json.loads(out.read_text())


def _check_schema(report, scenario, train_samples, names):
    assert report["scenario"] == scenario and report["train_samples"] == train_samples
    assert [s["name"] for s in report["systems"]] == names
    for system in report["systems"]:
        for field, kind in JSON_FIELDS.items():
            assert isinstance(system[field], kind), (system["name"], field)
        assert 0.0 <= system["test_accuracy"] <= 1.0 and 0.0 <= system["prequential_accuracy"] <= 1.0
        assert system["samples_per_second"] > 0 and system["peak_rss_mb"] >= system["baseline_rss_mb"] > 0
        assert system["test_samples"] == 400 and len(system["test_accuracy_per_class"]) == 10
    assert "recovery_samples" in report


def test_iid_all_systems(tmp_path, data_dir, capsys):
    code, report = _compare(tmp_path, data_dir, "--scenario", "iid", "--limit", "300", "--slow-limit", "150")
    assert code == 0
    _check_schema(report, "iid", 300, list(SYSTEMS))
    assert report["complete"] is True
    by_name = {s["name"]: s for s in report["systems"]}
    assert {n for n in by_name if n.startswith("hebb-")} == {"hebb-mnist", "hebb-mnist-shallow"}
    for name in ("river-hoeffding-tree", "river-arf"):
        assert by_name[name]["train_samples"] == 150 and "first 150 samples" in by_name[name]["notes"]
    assert all(by_name[n]["train_samples"] == 300 for n in by_name if not SYSTEMS[n].slow)
    assert "one sample per call" in by_name["sklearn-mlp"]["notes"]
    assert report["recovery_samples"] is None
    # a network that has seen 300 digits already beats chance clearly
    assert by_name["hebb-mnist"]["test_accuracy"] > 0.5
    png = tmp_path / "plots" / "compare-iid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = (tmp_path / "plots" / "compare-iid.md").read_text()
    assert all(f"| {name} | " in table for name in SYSTEMS)
    assert table in capsys.readouterr().out


def test_class_incremental(tmp_path, data_dir):
    code, report = _compare(tmp_path, data_dir, "--scenario", "class-incremental", "--limit", "500",
                            "--systems", "hebb-mnist-shallow,sklearn-sgd", "--mlp-batch", "4")
    assert code == 0
    _check_schema(report, "class-incremental", 500, ["hebb-mnist-shallow", "sklearn-sgd"])
    table = (tmp_path / "plots" / "compare-class-incremental.md").read_text()
    assert "Test accuracy per class" in table


def test_drift_reports_recovery_and_windows(tmp_path, data_dir):
    code, report = _compare(tmp_path, data_dir, "--scenario", "drift", "--limit", "1600", "--window", "200",
                            "--systems", "hebb-mnist,river-softmax")
    assert code == 0
    _check_schema(report, "drift", 1600, ["hebb-mnist", "river-softmax"])
    assert report["drift_at"] == 800 and report["window"] == 200
    hebb = report["systems"][0]
    # the readout's drift detector fired after the label permutation and the readout relearned
    assert hebb["drifts_detected"] >= 1
    assert len(hebb["windows_after_drift"]) == 4
    assert hebb["windows_after_drift"][-1] > hebb["windows_after_drift"][0]
    assert report["recovery_samples"] == hebb["recovery_samples"]
    assert report["recovery_samples"] is None or 200 <= report["recovery_samples"] <= 800
    assert "recovery" in (tmp_path / "plots" / "compare-drift.md").read_text()


def test_a_run_is_deterministic(data_dir):
    job = Job("hebb-mnist-shallow", str(data_dir), "drift", 400, 3, 1, 100)
    first, second = run_system(job), run_system(job)
    assert np.array_equal(first["correct"], second["correct"])
    assert first["test_accuracy"] == second["test_accuracy"]


def test_bad_arguments_exit_cleanly(tmp_path, data_dir, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--data", str(data_dir), "--systems", "hebb-mnist,vowpal"])
    assert exc.value.code == 2 and "unknown system(s) vowpal" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--data", str(data_dir), "--limit", "0"])
    assert exc.value.code == 2
    assert main(["compare", "--data", str(tmp_path), "--systems", "hebb-mnist-shallow"]) == 2
    assert "lacks" in capsys.readouterr().err

    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "river" else real_find_spec(name, *a))
    assert main(["compare", "--data", str(data_dir), "--systems", "hebb-mnist,river-arf"]) == 2
    assert "pip install 'hebb[compare]'" in capsys.readouterr().err


def test_reuse_merges_an_earlier_runs_systems(tmp_path, data_dir):
    base = ["compare", "--data", str(data_dir), "--scenario", "drift", "--limit", "400", "--window", "100",
            "--test-limit", "200"]
    first = tmp_path / "peers.json"
    assert main(base + ["--systems", "sklearn-sgd", "--json", str(first)]) == 0
    # as if the earlier run had been made on another host
    first.write_text(json.dumps(dict(json.loads(first.read_text()), machine="2 cores Elsewhere CPU")))
    merged = tmp_path / "merged.json"
    assert main(base + ["--systems", "hebb-mnist-shallow", "--reuse", str(first), "--json", str(merged),
                        "--plots", str(tmp_path)]) == 0
    report, earlier = json.loads(merged.read_text()), json.loads(first.read_text())
    assert [s["name"] for s in report["systems"]] == ["hebb-mnist-shallow", "sklearn-sgd"]
    reused = report["systems"][1]
    assert reused["reused_from"].startswith("hebb compare") or reused["reused_from"] == ""
    assert reused["test_accuracy"] == earlier["systems"][0]["test_accuracy"]
    assert reused["windows_after_drift"] == earlier["systems"][0]["windows_after_drift"]
    assert reused["reused_machine"] == "2 cores Elsewhere CPU"
    markdown = (tmp_path / "compare-drift.md").read_text()
    assert "Reused from an earlier run of the same stream on 2 cores Elsewhere CPU" in markdown
    assert f"Machine: {report['machine']}." in markdown and report["machine"] != "2 cores Elsewhere CPU"
    # merging only: two earlier reports, nothing run
    only = tmp_path / "only.json"
    assert main(base + ["--systems", "none", "--reuse", str(merged), "--reuse", str(first), "--json", str(only)]) == 0
    strip = lambda systems: [{k: v for k, v in s.items() if k not in ("reused_from", "reused_machine")}  # noqa: E731
                             for s in systems]
    only_systems = json.loads(only.read_text())["systems"]
    assert strip(only_systems) == strip(report["systems"]) and all("reused_from" in s for s in only_systems)
    # the peer keeps the machine it ran on through a second merge; hebb-mnist-shallow gets the merged run's
    assert [s["reused_machine"] for s in only_systems] == [report["machine"], "2 cores Elsewhere CPU"]
    assert main(base + ["--systems", "none"]) == 2
    # a report made on another stream is refused
    assert main(base[:-4] + ["--limit", "300", "--systems", "hebb-mnist-shallow", "--reuse", str(first)]) == 2


def test_reused_systems_keep_the_machine_they_ran_on():
    settings = {key: 1 for key in _REUSE_KEYS}
    previous = dict(settings, machine="M1", command="cmd", systems=[
        {"name": "a", "correct_bits": ""},                                             # ran in that report
        {"name": "b", "correct_bits": "", "reused_from": "old"},                       # reused there, unrecorded
        {"name": "c", "correct_bits": "", "reused_from": "old", "reused_machine": "M0"},
        {"name": "d", "correct_bits": "", "error": "failed"}])
    got = {s["name"]: (s["reused_from"], s["reused_machine"]) for s in reusable_results(previous, settings, ["x"])}
    assert got == {"a": ("cmd", "M1"), "b": ("old", UNRECORDED), "c": ("old", "M0")}


def test_partial_reports_after_each_system_are_reusable(data_dir):
    partial = []
    report, _, _ = compare(str(data_dir), "iid", 120, ["hebb-mnist-shallow", "sklearn-sgd"], test_limit=50,
                           checkpoint=lambda r: partial.append(json.loads(json.dumps(r))))
    assert [[s["name"] for s in p["systems"]] for p in partial] == [["hebb-mnist-shallow"],
                                                                     ["hebb-mnist-shallow", "sklearn-sgd"]]
    assert all(p["complete"] is False for p in partial) and report["complete"] is True
    settings = {k: report[k] for k in ("scenario", "train_samples", "test_samples", "seed", "slow_limit", "mlp_batch")}
    kept = reusable_results(partial[0], settings, skip=[])
    assert [s["name"] for s in kept] == ["hebb-mnist-shallow"]
    assert kept[0]["reused_machine"] == report["machine"] != UNRECORDED
    assert kept[0]["test_accuracy"] == report["systems"][0]["test_accuracy"]
