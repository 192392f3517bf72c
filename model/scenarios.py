"""Seeded training streams for the continual-learning scenarios of ``hebb compare``.

Every scenario is built from the same seeded shuffle of the training set, so all systems (and all
scenarios with the same ``limit``) see the same samples:

- ``iid``: the shuffled stream itself.
- ``class-incremental``: the same samples, ordered by class pairs ({0,1}, then {2,3} … {8,9});
  within a pair the shuffled order is kept.
- ``drift``: the shuffled stream; from its midpoint on every label ``y`` is replaced by
  ``permutation[y]``, a seeded derangement (no class keeps its label). The test set is labeled
  with the mapping in force at the end of the stream.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> data = {"train_images": np.zeros((40, 28, 28), np.uint8), "train_labels": np.arange(40) % 10,
...         "test_images": np.zeros((10, 28, 28), np.uint8), "test_labels": np.arange(10)}
>>> stream = build_stream(data, "class-incremental", limit=20, seed=0)
>>> (stream.labels // 2).tolist()
[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4]
>>> stream.boundaries()
[6, 10, 13, 17]
>>> drift = build_stream(data, "drift", limit=20, seed=0)
>>> drift.drift_at, bool((drift.permutation != np.arange(10)).all())
(10, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCENARIOS = ("iid", "class-incremental", "drift")


@dataclass(frozen=True)
class Stream:
    """One scenario's training stream (in order) and the test set to evaluate on afterwards."""

    scenario: str
    images: np.ndarray        # uint8[N, H, W], in stream order
    labels: np.ndarray        # int64[N], the labels as presented (permuted after a drift)
    test_images: np.ndarray
    test_labels: np.ndarray   # labeled with the mapping in force at the end of the stream
    drift_at: int | None = None
    permutation: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def boundaries(self) -> list[int]:
        """Stream positions where the task changes (class-pair starts after the first, or the drift)."""
        if self.drift_at is not None:
            return [self.drift_at]
        if self.scenario == "class-incremental":
            pairs = self.labels // 2
            return [int(i) for i in np.flatnonzero(np.diff(pairs)) + 1]
        return []


def shuffled_order(n_train: int, limit: int | None, seed: int) -> np.ndarray:
    """The seeded shuffle every scenario starts from, truncated to ``limit`` samples."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    order = np.random.default_rng(seed).permutation(n_train)
    return order if limit is None else order[:limit]


def derangement(classes: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(classes)`` that moves every class."""
    rng = np.random.default_rng([seed, 0xD81F7])
    while True:
        perm = rng.permutation(classes)
        if (perm != np.arange(classes)).all():
            return perm


def build_stream(data: dict[str, np.ndarray], scenario: str, limit: int | None = None, seed: int = 0) -> Stream:
    """Build ``scenario``'s stream from a dataset dict as returned by :func:`model.data.load_dataset`."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    order = shuffled_order(len(data["train_labels"]), limit, seed)
    labels = data["train_labels"][order].astype(np.int64)
    test_labels = data["test_labels"].astype(np.int64)
    drift_at = permutation = None
    if scenario == "class-incremental":
        by_pair = np.argsort(labels // 2, kind="stable")
        order, labels = order[by_pair], labels[by_pair]
    elif scenario == "drift":
        classes = int(max(labels.max(), test_labels.max())) + 1
        permutation = derangement(classes, seed)
        drift_at = len(order) // 2
        labels = labels.copy()
        labels[drift_at:] = permutation[labels[drift_at:]]
        test_labels = permutation[test_labels]
    return Stream(scenario, data["train_images"][order], labels, data["test_images"], test_labels,
                  drift_at, permutation)
