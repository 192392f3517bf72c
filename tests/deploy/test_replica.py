"""The serving state a learner publishes: a small fraction of the checkpoint, and a replica built
from it predicts bit-identically to the learner (guards the list of learning-only arrays, which
must follow the engine's state layout)."""

from __future__ import annotations

import numpy as np
import pytest

from model import Network, encode_state
from service.replica import LEARNING_ONLY_ARRAYS, ReplicaBuilder, encode_serving
from service.stores.base import ModelRecord


@pytest.mark.parametrize("preset", ["mnist-shallow", "mnist"])
def test_replica_from_the_serving_state_predicts_like_the_learner(preset, mnist):
    X = mnist["train_images"][:450].reshape(-1, 784)
    y = mnist["train_labels"][:450]
    learner = Network(preset, seed=0)
    learner.learn_many(X[:300], y[:300])
    state = learner.state_dict()
    assert LEARNING_ONLY_ARRAYS <= set(state["arrays"]), "an excluded array no longer exists in the engine's state"
    largest = max(state["arrays"], key=lambda name: state["arrays"][name].nbytes)
    assert largest in LEARNING_ONLY_ARRAYS, f"{largest} (the biggest array) would be shipped to predictors"
    blob = encode_serving(state)
    assert len(blob) < 0.25 * len(encode_state(state)), "the serving state should be a small part of the state"

    replica = ReplicaBuilder(ModelRecord(name="m", preset=preset)).build(blob)
    probe = X[300:]
    np.testing.assert_array_equal(replica.predict_proba_many(probe), learner.snapshot().predict_proba_many(probe))
    assert (replica.samples_seen, replica.labels_seen) == (300, 300)
    assert replica.prequential_accuracy == learner.prequential_accuracy


def test_a_serving_state_of_another_config_is_refused(mnist):
    net = Network("mnist-shallow", seed=0)
    with pytest.raises(ValueError):
        ReplicaBuilder(ModelRecord(name="m", preset="mnist")).build(encode_serving(net.state_dict()))
