"""Network-level behaviour: online semantics, determinism, state, bad inputs, accuracy."""

import numpy as np
import pytest

from model import Network, StateError, decode_state, encode_state, make_config

SMALL = make_config("mnist", {"layers": [
    {"channels": 12, "kernel": 5, "pool": 2, "readout_grid": 2},
    {"channels": 24, "kernel": 3, "pool": 1, "readout_grid": 2}],
    "readout": {"first_solve": 8, "solve_every": 32}})


@pytest.fixture(scope="module")
def stream(mnist):
    return mnist["train_images"][:300], mnist["train_labels"][:300]


def test_learn_many_equals_looping_learn_one(stream):
    X, y = stream
    a, b, c = Network(SMALL, seed=3), Network(SMALL, seed=3), Network(SMALL, seed=3)
    preds_a = a.learn_many(X, y)
    preds_b = np.array([b.learn_one(x, int(t)) for x, t in zip(X, y)])
    preds_c = np.concatenate([c.learn_many(X[i:i + 37], y[i:i + 37]) for i in range(0, len(X), 37)])
    assert a.state_digest() == b.state_digest() == c.state_digest()
    np.testing.assert_array_equal(preds_a, preds_b)
    np.testing.assert_array_equal(preds_a, preds_c)


def test_same_seed_same_state_different_seed_differs(stream):
    X, y = stream
    a, b, c = Network(SMALL, seed=1), Network(SMALL, seed=1), Network(SMALL, seed=2)
    for net in (a, b, c):
        net.learn_many(X[:100], y[:100])
    assert a.state_digest() == b.state_digest()
    assert a.state_digest() != c.state_digest()


def test_learn_one_predicts_before_learning(stream):
    X, y = stream
    net = Network(SMALL, seed=0)
    net.learn_many(X[:100], y[:100])
    expected = net.predict_one(X[100])
    assert net.learn_one(X[100], int(y[100])) == expected


def test_unlabeled_samples_update_features_only(stream):
    X, _ = stream
    net = Network(SMALL, seed=0)
    readout_before = {k: v.copy() for k, v in net._arrays().items() if k.startswith("readout.")}
    w_before = net.layers[0].weights.copy()
    net.learn_many(X[:20])
    assert net.samples_seen == 20 and net.labels_seen == 0
    assert not np.array_equal(net.layers[0].weights, w_before)
    for name, before in readout_before.items():
        np.testing.assert_array_equal(net._arrays()[name], before)


def test_state_round_trip_is_exact_and_continues_identically(stream):
    X, y = stream
    net = Network(SMALL, seed=5)
    net.learn_many(X[:150], y[:150])
    clone = Network.from_state(decode_state(encode_state(net.state_dict())))
    assert clone.state_digest() == net.state_digest()
    assert clone.stats()["samples_seen"] == 150
    net.learn_many(X[150:], y[150:])
    clone.learn_many(X[150:], y[150:])
    assert clone.state_digest() == net.state_digest()


def test_state_arrays_keep_one_memory_layout(stream):
    """numba specialises kernels per layout with different rounding: a state array whose layout
    changed across a save/restore would make a restored model diverge from the original."""
    X, y = stream
    net = Network(SMALL, seed=5)
    net.learn_many(X, y)
    assert net.readout.solves > 0
    for name, array in net._arrays().items():
        assert array.flags["C_CONTIGUOUS"], name


def test_state_dict_is_a_copy(stream):
    X, y = stream
    net = Network(SMALL, seed=5)
    state = net.state_dict()
    net.learn_many(X[:10], y[:10])
    assert Network.from_state(state).state_digest() != net.state_digest()


def test_state_encoding_is_the_documented_layout(stream):
    """Magic, header length, JSON header, the arrays' raw bytes in name order, sha256 of all that:
    written by hand here, so a faster encoder cannot change the format checkpoints are stored in."""
    import hashlib
    import json
    import struct

    X, y = stream
    net = Network(SMALL, seed=2)
    net.learn_many(X[:40], y[:40])
    state = net.state_dict()
    blob = encode_state(state)
    start = 8 + 8
    (header_len,) = struct.unpack("<Q", blob[8:start])
    header = json.loads(blob[start:start + header_len])
    body = b"".join(np.ascontiguousarray(state["arrays"][item["name"]]).tobytes() for item in header["arrays"])
    payload = b"HEBBSTAT" + struct.pack("<Q", header_len) + blob[start:start + header_len] + body
    assert [item["name"] for item in header["arrays"]] == sorted(state["arrays"])
    assert blob == payload + hashlib.sha256(payload).digest()


def test_corrupt_or_incompatible_state_is_refused():
    net = Network(SMALL, seed=0)
    blob = bytearray(encode_state(net.state_dict()))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(StateError, match="checksum"):
        decode_state(bytes(blob))
    state = net.state_dict()
    state["version"] = 99
    with pytest.raises(StateError, match="version"):
        Network.from_state(state)
    state = net.state_dict()
    state["arrays"]["layers.0.vectors"] = state["arrays"]["layers.0.vectors"][:, :3]
    with pytest.raises(StateError, match="shape"):
        Network.from_state(state)
    state = net.state_dict()
    state["config"]["layers"][0]["channels"] = 13
    with pytest.raises(StateError, match="digest"):
        Network.from_state(state)


@pytest.mark.parametrize("X,y,match", [
    (np.zeros((1, 783), np.uint8), [1], "784 values"),
    (np.full((1, 784), np.nan, np.float32), [1], "NaN"),
    (np.full((1, 784), np.inf), [1], "NaN or infinite"),
    (np.full((1, 784), 2.0), [1], r"\[0, 1\]"),
    (np.zeros((1, 784), np.int32), [1], "dtype"),
    (np.zeros((1, 784), np.complex64), [1], "dtype"),
    (np.zeros((1, 784), np.uint8), [10], "out of range"),
    (np.zeros((1, 784), np.uint8), [-2], "out of range"),
    (np.zeros((1, 784), np.uint8), [True], "integer"),
    (np.zeros((1, 784), np.uint8), [1.5], "integer"),
    (np.zeros((2, 784), np.uint8), [1], "2 samples"),
    ([["a"] * 784], [1], "dtype"),
])
def test_bad_input_raises_and_changes_nothing(stream, X, y, match):
    net = Network(SMALL, seed=0)
    net.learn_many(stream[0][:5], stream[1][:5])
    digest = net.state_digest()
    with pytest.raises(ValueError, match=match):
        net.learn_many(X, y)
    assert net.state_digest() == digest
    if len(y) == len(X) and not isinstance(X, list):
        with pytest.raises(ValueError):
            net.learn_one(X[0], y[0])
    assert net.state_digest() == digest


@pytest.mark.parametrize("X,match", [
    (np.zeros((3, 783), np.uint8), "784 values"),
    (np.full((3, 784), np.nan, np.float32), "NaN"),
    (np.full((3, 784), 2.0), r"\[0, 1\]"),
    (np.zeros((3, 784), np.int32), "dtype"),
])
def test_bad_input_to_prediction_raises(stream, X, match):
    net = Network(SMALL, seed=0)
    net.learn_many(stream[0][:5], stream[1][:5])
    with pytest.raises(ValueError, match=match):
        net.predict_many(X)
    with pytest.raises(ValueError, match=match):
        net.snapshot().predict_proba_many(X)


def test_a_bad_sample_in_a_batch_applies_nothing(stream):
    X, y = stream
    net = Network(SMALL, seed=0)
    digest = net.state_digest()
    bad_labels = list(y[:10])
    bad_labels[7] = 42
    with pytest.raises(ValueError, match="label 7"):
        net.learn_many(X[:10], bad_labels)
    assert net.state_digest() == digest and net.samples_seen == 0


def test_predictions_are_probabilities_and_accept_every_layout(stream):
    X, y = stream
    net = Network(SMALL, seed=0)
    net.learn_many(X[:200], y[:200])
    p = net.predict_proba_many(X[:5])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    flat = X[:5].reshape(5, 784)
    np.testing.assert_array_equal(net.predict_many(flat), net.predict_many(X[:5, :, :, None]))
    np.testing.assert_array_equal(net.predict_many(flat.astype(np.float32) / 255), net.predict_many(flat))
    # many blocks on several threads, each converting its own pixels: the same as floats given
    many = X[:300].reshape(300, 784)
    np.testing.assert_array_equal(net.predict_proba_many(many), net.predict_proba_many(many.astype(np.float32) / 255))
    proba_one = net.predict_proba_one(X[0])
    assert set(proba_one) == set(range(10)) and abs(sum(proba_one.values()) - 1) < 1e-5


def test_stats_report_layer_health(stream):
    X, y = stream
    net = Network(SMALL, seed=0)
    net.learn_many(X, y)
    stats = net.stats()
    assert stats["samples_seen"] == 300 and stats["labels_seen"] == 300
    assert 0.0 < stats["prequential_accuracy"] <= 1.0
    assert len(stats["layers"]) == len(SMALL.layers)
    for layer in stats["layers"]:
        assert 0.0 <= layer["dead_fraction"] <= 1.0
        assert 0.5 < layer["win_rate_entropy"] <= 1.0
        assert layer["mean_weight_norm"] == pytest.approx(1.0, abs=1e-3)


def test_dead_units_are_counted():
    net = Network(make_config("mnist-shallow", {"dead_window": 10}), seed=0)
    net.samples_seen = 100
    net.layers[0].last_win[:] = 95
    net.layers[0].last_win[:8] = 50  # 8 of 64 units have not won for 50 > 10 samples
    assert net.stats()["layers"][0]["dead_fraction"] == pytest.approx(8 / 64)


@pytest.mark.parametrize("preset", ["mnist", "mnist-fine"])
def test_small_data_accuracy(mnist, preset):
    """First 10k training samples, one online pass ⇒ ≥ 95% on 2k test samples."""
    net = Network(preset, seed=0)
    net.learn_many(mnist["train_images"][:10_000], mnist["train_labels"][:10_000])
    accuracy = np.mean(net.predict_many(mnist["test_images"][:2000]) == mnist["test_labels"][:2000])
    assert accuracy >= 0.95, accuracy
    assert net.prequential_accuracy > 0.9


def test_default_preset_pools_layer_1_wider_so_deeper_layers_have_fewer_positions():
    default, fine = Network("mnist"), Network("mnist-fine")
    assert [layer.out_hw for layer in default.layers] == [(24, 24), (6, 6), (1, 1)]
    assert [layer.out_hw for layer in fine.layers] == [(24, 24), (10, 10), (3, 3)]
    assert default.layers[0].emission_shape == (8, 8, 64) and default.layers[2].config.channels == 1024
    assert default.n_features == 3 * 1024 + 1 and fine.n_features == 2 * 1024 + 512 + 1
    # one position per sample: layer 3's thresholds must fall fast enough for every unit to win
    assert default.layers[2].config.plasticity.homeostasis == 0.05


def test_serving_state_predicts_identically_and_cannot_learn(stream):
    X, y = stream
    net = Network(SMALL, seed=2)
    net.learn_many(X[:200], y[:200])
    serving = net.state_dict(serving=True)
    assert "readout.gram_lower" not in serving["arrays"] and "readout.weights" in serving["arrays"]
    replica = Network.from_state(decode_state(encode_state(serving)))
    np.testing.assert_array_equal(replica.predict_proba_many(X[200:]), net.predict_proba_many(X[200:]))
    with pytest.raises(RuntimeError, match="serving state"):
        replica.learn_many(X[:1], y[:1])
