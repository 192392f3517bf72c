"""Scenario streams and the comparison's metrics (no subprocesses, no peers)."""

from __future__ import annotations

import numpy as np
import pytest

from model.compare import recovery_samples, trailing_accuracy, windows_after
from model.scenarios import build_stream, derangement, shuffled_order


def _ids(stream):
    """Which training sample each stream image is, by its bytes (MNIST has duplicates; compare multisets)."""
    return sorted(img.tobytes() for img in stream.images)


def test_every_scenario_uses_the_same_seeded_samples(mnist):
    streams = {s: build_stream(mnist, s, limit=300, seed=4) for s in ("iid", "class-incremental", "drift")}
    assert all(len(st) == 300 for st in streams.values())
    assert _ids(streams["iid"]) == _ids(streams["class-incremental"]) == _ids(streams["drift"])
    again = build_stream(mnist, "iid", limit=300, seed=4)
    assert np.array_equal(again.images, streams["iid"].images) and np.array_equal(again.labels, streams["iid"].labels)
    other_seed = build_stream(mnist, "iid", limit=300, seed=5)
    assert not np.array_equal(other_seed.labels, streams["iid"].labels)
    order = shuffled_order(len(mnist["train_labels"]), 300, 4)
    assert np.array_equal(streams["iid"].labels, mnist["train_labels"][order])


def test_class_incremental_orders_by_class_pairs(mnist):
    stream = build_stream(mnist, "class-incremental", limit=2_000, seed=0)
    pairs = stream.labels // 2
    assert (np.diff(pairs) >= 0).all() and set(pairs.tolist()) == set(range(5))
    assert stream.boundaries() == [int(np.argmax(pairs == p)) for p in range(1, 5)]
    assert np.array_equal(stream.test_labels, mnist["test_labels"])


def test_drift_permutes_labels_from_the_midpoint(mnist):
    iid = build_stream(mnist, "drift", limit=1_001, seed=2)
    plain = build_stream(mnist, "iid", limit=1_001, seed=2)
    assert iid.drift_at == 500 and iid.boundaries() == [500]
    perm = iid.permutation
    assert sorted(perm.tolist()) == list(range(10)) and (perm != np.arange(10)).all()
    assert np.array_equal(iid.labels[:500], plain.labels[:500])
    assert np.array_equal(iid.labels[500:], perm[plain.labels[500:]])
    assert np.array_equal(iid.test_labels, perm[mnist["test_labels"]])
    assert np.array_equal(iid.images, plain.images)


def test_bad_scenario_and_limit_are_refused(mnist):
    with pytest.raises(ValueError, match="unknown scenario"):
        build_stream(mnist, "shuffled", limit=10)
    with pytest.raises(ValueError, match="limit"):
        build_stream(mnist, "iid", limit=0)


def test_derangement_is_seeded():
    assert np.array_equal(derangement(10, 3), derangement(10, 3))
    assert all((derangement(10, s) != np.arange(10)).all() for s in range(20))


def test_trailing_accuracy():
    correct = np.array([1, 0, 1, 1, 0, 0], bool)
    assert np.allclose(trailing_accuracy(correct, 2), [1, 0.5, 0.5, 1, 0.5, 0])
    assert np.allclose(trailing_accuracy(correct, 100), np.cumsum(correct) / np.arange(1, 7))


def test_recovery_and_windows_after_drift():
    correct = np.concatenate([np.ones(1_000, bool), np.zeros(300, bool), np.ones(2_000, bool)])
    # the first 500-window wholly after the drift that is above 95 % ends 300 + 476 samples in
    assert recovery_samples(correct, 1_000, 500) == 776
    assert recovery_samples(correct, 1_000, 500, target=1.0) is None      # "above" is strict
    assert recovery_samples(correct[:1_200], 1_000, 500) is None          # window does not fit
    assert recovery_samples(np.zeros(5_000, bool), 1_000, 500) is None
    assert windows_after(correct, 1_000, 500) == [0.4, 1.0, 1.0, 1.0]
