"""Pictures of what the units learned: top-layer winners and their preferred inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest

from model import Network
from model.validation import as_sample_batch
from model.visualize import (layer_filters_png, patch_grid, receptive_field, top_layer_winners,
                             unit_preferred_inputs, unit_preferred_inputs_png)


@pytest.fixture(scope="module")
def trained(mnist):
    """A 2-layer network after 150 samples, and 40 other images."""
    X = mnist["train_images"][:190].reshape(-1, 784)
    net = Network("mnist", seed=0)
    net.learn_many(X[:150], mnist["train_labels"][:150])
    return net, X[150:]


def test_top_layer_winners_are_the_engines_winners(trained):
    net, X = trained
    winners = top_layer_winners(net, X)
    # ask the engine itself: make the top layer emit its (hard-competition, unpooled) output
    top = net.layers[-1]
    assert top.config.competition.mode == "hard" and top.config.pool == 1
    saved = top._emit_shape
    top._emit_shape = top.emission_shape
    try:
        h = as_sample_batch(X, net.config.input_shape)
        for layer in net.layers:
            h, _ = layer.forward(h)
    finally:
        top._emit_shape = saved
    active = winners >= 0
    assert active.mean() > 0.5
    assert np.array_equal(h.argmax(axis=-1)[active], winners[active])
    assert np.all(h.sum(axis=-1)[active] == 1.0) and np.all(h[~active] == 0.0)


def test_winners_on_a_snapshot_ignore_later_learning(trained, mnist):
    net, X = trained
    clone = Network.from_state(net.state_dict())
    snapshot = clone.snapshot()
    before = top_layer_winners(clone, X, snapshot)
    clone.learn_many(mnist["train_images"][1000:1060].reshape(-1, 784))
    assert np.array_equal(top_layer_winners(clone, X, snapshot), before)
    assert not np.array_equal(top_layer_winners(clone, X), before)


def test_preferred_inputs_average_the_patches_where_each_unit_wins(trained):
    net, X = trained
    means, counts = unit_preferred_inputs(net, X)
    size, step = receptive_field(net)
    assert (size, step) == (28, 6)  # mnist: 3x3 over 2x2-pooled 3x3 over 3x3-pooled 5x5 fields, the whole image
    assert means.shape == (net.layers[-1].config.channels, size, size, 1)
    images = as_sample_batch(X, net.config.input_shape)
    winners = top_layer_winners(net, X)
    sums = np.zeros_like(means, dtype=np.float64)
    expected_counts = np.zeros(len(counts), np.int64)
    for n, oy, ox in zip(*np.nonzero(winners >= 0)):
        unit = winners[n, oy, ox]
        sums[unit] += images[n, oy * step:oy * step + size, ox * step:ox * step + size]
        expected_counts[unit] += 1
    assert np.array_equal(counts, expected_counts)
    won = counts > 0
    np.testing.assert_allclose(means[won], sums[won] / counts[won, None, None, None], rtol=1e-5, atol=1e-6)
    assert np.all(means[~won] == 0.0)
    assert counts.sum() == (winners >= 0).sum()


def test_preferred_inputs_of_a_one_layer_network_are_its_5x5_patches(mnist):
    net = Network("mnist-shallow", seed=0)
    X = mnist["train_images"][:10].reshape(-1, 784)
    means, counts = unit_preferred_inputs(net, X)
    assert receptive_field(net) == (5, 1)
    assert means.shape == (64, 5, 5, 1)
    assert counts.sum() == (top_layer_winners(net, X) >= 0).sum() > 0


def test_no_inputs_give_empty_preferences(trained):
    net, _ = trained
    means, counts = unit_preferred_inputs(net, np.zeros((0, 784), np.uint8))
    assert counts.sum() == 0 and not means.any()


def test_pictures_are_pngs_of_the_expected_size(trained):
    import matplotlib.image

    net, X = trained
    filters = matplotlib.image.imread(io.BytesIO(layer_filters_png(net)))
    assert filters.shape[:2] == ((8 * 6 - 1) * 4, (8 * 6 - 1) * 4)     # 8x8 tiles of 5x5, 1px gaps, x4
    units = matplotlib.image.imread(io.BytesIO(unit_preferred_inputs_png(net, X)))
    assert net.layers[-1].config.channels == 1024                         # the mnist preset's top layer
    assert units.shape[:2] == ((32 * 29 - 1) * 3, (32 * 29 - 1) * 3)   # 1,024 units: 32x32 tiles of 28x28, x3
    assert patch_grid(np.ones((3, 2, 2, 1)), zoom=1).shape == (5, 5)
