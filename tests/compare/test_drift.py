"""The DDM drift detector and the drift-guarded readout."""

from __future__ import annotations

import numpy as np
import pytest

from model import Network, make_config
from model.drift import DriftDetector


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("error_rate", [0.02, 0.1, 0.3, 0.5])
def test_no_false_alarm_on_a_stationary_stream(seed, error_rate):
    errors = np.random.default_rng(seed).random(20_000) < error_rate
    detector = DriftDetector()
    assert detector.update_many(errors) == -1
    assert detector.drifts == 0 and detector.samples == 20_000


@pytest.mark.parametrize("seed", range(5))
def test_detects_a_rise_in_error_rate_quickly(seed):
    rng = np.random.default_rng(seed)
    detector = DriftDetector()
    assert detector.update_many(rng.random(10_000) < 0.05) == -1
    fired = detector.update_many(rng.random(1_000) < 0.9)
    assert 0 <= fired < 100
    assert detector.drifts == 1
    # it restarted: the new, stable error rate is its new normal
    assert detector.update_many(rng.random(10_000) < 0.9) == -1


def test_falling_error_rate_is_not_a_drift():
    errors = np.concatenate([np.ones(200, bool), np.random.default_rng(0).random(5_000) < 0.05])
    assert DriftDetector().update_many(errors) == -1


def test_deterministic_and_state_is_the_whole_story():
    errors = np.random.default_rng(3).random(3_000) < np.linspace(0.05, 0.5, 3_000)
    a, b = DriftDetector(), DriftDetector()
    first = a.update_many(errors[:1_000])
    b.state = a.state.copy()
    assert first == -1
    assert a.update_many(errors[1_000:]) == b.update_many(errors[1_000:])
    assert np.array_equal(a.state, b.state)


def test_rejects_bad_parameters():
    for bad in ({"min_samples": 0}, {"threshold": 0}, {"tolerance": -0.1}, {"tolerance": 1.0}):
        with pytest.raises(ValueError):
            DriftDetector(**bad)
    with pytest.raises(ValueError):
        make_config("mnist-shallow", {"readout": {"drift_detector": "adwin2"}})


def _permuted_stream(mnist, n: int):
    X, y = mnist["train_images"][:n], mnist["train_labels"][:n].copy()
    y[n // 2:] = np.roll(np.arange(10), 3)[y[n // 2:]]
    return X, y


@pytest.fixture(scope="module")
def drift_config():
    return make_config("mnist-shallow", {"readout": {"drift_detector": "page-hinkley", "first_solve": 16, "solve_every": 200}})


def test_guarded_network_resets_its_readout_and_relearns(mnist, drift_config):
    X, y = _permuted_stream(mnist, 2_000)
    guarded, plain = Network(drift_config, seed=0), Network("mnist-shallow", seed=0)
    ok_guarded = guarded.learn_many(X, y) == y
    ok_plain = plain.learn_many(X, y) == y
    assert guarded.stats()["readout"]["drifts"] >= 1
    assert plain.stats()["readout"]["drifts"] == 0
    # after the switch the guarded readout relearns the new mapping; the unguarded one cannot
    # unlearn 1,000 samples of the old mapping in time
    assert ok_guarded[-500:].mean() > 0.7
    assert ok_guarded[-500:].mean() > ok_plain[-500:].mean() + 0.2


def test_guarded_network_chunking_and_state_round_trip_are_exact(mnist, drift_config):
    X, y = _permuted_stream(mnist, 1_200)
    whole = Network(drift_config, seed=0)
    preds_whole = whole.learn_many(X, y)
    pieces = Network(drift_config, seed=0)
    preds_pieces = []
    for start in range(0, 1_000, 37):
        stop = min(start + 37, 1_000)
        preds_pieces.append(pieces.learn_many(X[start:stop], y[start:stop]))
    restored = Network.from_state(pieces.state_dict())
    preds_pieces.append(restored.learn_many(X[1_000:], y[1_000:]))
    assert np.array_equal(preds_whole, np.concatenate(preds_pieces))
    assert restored.state_digest() == whole.state_digest()
    assert restored.stats()["readout"]["drifts"] == whole.stats()["readout"]["drifts"] >= 1


def test_delta_rule_readout_can_be_guarded_too(mnist):
    config = make_config("mnist-shallow", {"readout": {"rule": "delta", "drift_detector": "page-hinkley"}})
    X, y = _permuted_stream(mnist, 600)
    whole, pieces = Network(config, seed=0), Network(config, seed=0)
    preds = whole.learn_many(X, y)
    assert np.array_equal(preds, np.concatenate([pieces.learn_many(X[s:s + 50], y[s:s + 50])
                                                 for s in range(0, 600, 50)]))
    assert pieces.state_digest() == whole.state_digest()
