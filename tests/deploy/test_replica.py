"""The serving state a learner publishes: a small fraction of the checkpoint, and a replica built
from it predicts bit-identically to the learner and refuses to learn."""

from __future__ import annotations

import numpy as np
import pytest

from model import Network, encode_state
from service.replica import ReplicaBuilder, encode_serving
from service.stores.base import ModelRecord


@pytest.mark.parametrize("preset", ["mnist-shallow", "mnist"])
def test_replica_from_the_serving_state_predicts_like_the_learner(preset, mnist):
    X = mnist["train_images"][:450].reshape(-1, 784)
    y = mnist["train_labels"][:450]
    learner = Network(preset, seed=0)
    learner.learn_many(X[:300], y[:300])
    state = learner.state_dict()
    blob = encode_serving(learner)
    # it leaves out the readout's learning statistics, which dominate the full state
    statistics = sum(getattr(learner.readout, name).nbytes for name in learner.readout.STATE_ARRAYS
                     if name not in learner.readout.SERVING_ARRAYS)
    full = len(encode_state(state))
    assert statistics > 0.5 * full
    assert len(blob) < full - 0.99 * statistics, "the serving state should leave the learning statistics out"

    replica = ReplicaBuilder(ModelRecord(name="m", preset=preset)).build(blob)
    probe = X[300:]
    np.testing.assert_array_equal(replica.predict_proba_many(probe), learner.snapshot().predict_proba_many(probe))
    assert (replica.samples_seen, replica.labels_seen) == (300, 300)
    assert replica.prequential_accuracy == learner.prequential_accuracy
    with pytest.raises(RuntimeError, match="serving state"):
        replica.learn_many(probe[:1], [0])


def test_a_serving_state_of_another_config_is_refused(mnist):
    net = Network("mnist-shallow", seed=0)
    with pytest.raises(ValueError):
        ReplicaBuilder(ModelRecord(name="m", preset="mnist")).build(encode_serving(net))
    with pytest.raises(ValueError, match="not a serving state"):  # a full checkpoint state is not one
        ReplicaBuilder(ModelRecord(name="m", preset="mnist-shallow")).build(encode_state(net.state_dict()))
