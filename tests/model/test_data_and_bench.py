"""IDX loading (any dataset in the four-file layout), checksum-verified download, hebb bench."""

import gzip
import hashlib
import json
import shutil
import struct

import numpy as np
import pytest

from model import data
from model.data import DatasetError, download_mnist, load_dataset, read_idx
from service.cli import main as hebb


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def make_dataset(directory, n_train=40, n_test=10, size=16, classes=3, seed=0):
    """A tiny synthetic dataset in the MNIST file layout (not MNIST: other size and classes)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, classes, n)
        images = np.zeros((n, size, size), np.uint8)
        for i, label in enumerate(labels):  # one bright bar per class, at a class-specific row
            images[i, 2 + 4 * label:4 + 4 * label, 2:size - 2] = 255
        _write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


def test_loads_mnist(mnist):
    assert mnist["train_images"].shape == (60000, 28, 28) and mnist["train_images"].dtype == np.uint8
    assert mnist["test_images"].shape == (10000, 28, 28)
    assert mnist["train_labels"][0] == 5 and mnist["test_labels"][0] == 7
    assert np.bincount(mnist["test_labels"]).tolist()[:3] == [980, 1135, 1032]


def test_loads_any_dataset_in_the_layout(tmp_path):
    ds = load_dataset(make_dataset(tmp_path / "bars"))
    assert ds["train_images"].shape == (40, 16, 16) and set(ds["train_labels"]) <= {0, 1, 2}


def test_data_dir_from_environment(tmp_path, monkeypatch):
    make_dataset(tmp_path / "env")
    monkeypatch.setenv("HEBB_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset()["test_images"].shape == (10, 16, 16)


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="lacks"):
        load_dataset(tmp_path)
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x01\x02\x03\x04")
    with pytest.raises(DatasetError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short.gz"
    with gzip.open(short, "wb") as fh:
        fh.write(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 3)
    with pytest.raises(DatasetError, match="size"):
        read_idx(short)


def test_download_verifies_checksums(tmp_path, data_dir, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in data.MNIST_MD5:
        shutil.copy(data_dir / name, mirror / name)
    target = download_mnist(tmp_path / "dl", mirrors=(mirror.as_uri() + "/",))
    for name, md5 in data.MNIST_MD5.items():
        assert hashlib.md5((target / name).read_bytes()).hexdigest() == md5
    # a mirror serving a corrupted file is rejected and nothing is kept
    bad_mirror = tmp_path / "bad"
    shutil.copytree(mirror, bad_mirror)
    (bad_mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    with pytest.raises(DatasetError, match="checksum"):
        download_mnist(tmp_path / "dl2", mirrors=(bad_mirror.as_uri() + "/",))
    assert not (tmp_path / "dl2" / "t10k-labels-idx1-ubyte.gz").exists()


BENCH_KEYS = {"test_accuracy", "prequential_accuracy", "learn_samples_per_second", "predict_samples_per_second",
              "train_samples", "test_samples", "preset", "seed", "state_digest", "layers"}


def test_bench_command_writes_json_and_plots(tmp_path, data_dir, capsys):
    out = tmp_path / "bench.json"
    assert hebb(["bench", "--data", str(data_dir), "--preset", "mnist-shallow", "--train-limit", "1500",
                 "--test-limit", "500", "--json", str(out), "--plots", str(tmp_path / "plots"), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert set(result) == BENCH_KEYS
    assert result["train_samples"] == 1500 and result["test_samples"] == 500 and result["preset"] == "mnist-shallow"
    assert result["test_accuracy"] > 0.8 and result["learn_samples_per_second"] > 0
    assert [set(layer) >= {"dead_fraction"} for layer in result["layers"]] == [True]
    assert (tmp_path / "plots" / "filters-mnist-shallow.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "prequential-mnist-shallow.png").stat().st_size > 1000
    assert "compile" in capsys.readouterr().out
    # same seed, same stream: the same state
    again = tmp_path / "again.json"
    hebb(["bench", "--data", str(data_dir), "--preset", "mnist-shallow", "--train-limit", "1500",
          "--test-limit", "500", "--json", str(again), "--no-progress"])
    assert json.loads(again.read_text())["state_digest"] == result["state_digest"]


def test_bench_adapts_to_another_dataset(tmp_path):
    out = tmp_path / "bars.json"
    hebb(["bench", "--data", str(make_dataset(tmp_path / "bars", n_train=200, n_test=30)), "--preset", "mnist-shallow",
          "--config", '{"layers": [{"channels": 8, "kernel": 3, "readout_grid": 2}], "readout": {"first_solve": 16}}',
          "--json", str(out), "--no-progress"])
    assert json.loads(out.read_text())["test_accuracy"] == 1.0
