"""The bounded recent-activity window the service keeps per model for the dashboard."""

from __future__ import annotations

import numpy as np

from service.activity import RecentActivity


def batch(values, size=2):
    return np.array([[v % 256] * size for v in values], np.uint8)


def test_recent_inputs_keep_the_newest_in_arrival_order_across_wraps():
    activity = RecentActivity(3, 2, inputs_kept=4)
    seen = []
    for start, n in ((0, 3), (3, 2), (5, 7), (12, 1)):     # one batch larger than the buffer
        values = list(range(start, start + n))
        activity.record(batch(values), np.full(n, -1), np.zeros(n, np.int64), step=start + n)
        seen += values
        expected = seen[-4:]
        assert activity.recent_inputs()[:, 0].tolist() == expected
        assert activity.recent_inputs().shape == (len(expected), 2)


def test_confusion_and_rolling_accuracy_cover_the_last_labeled_pairs_only():
    activity = RecentActivity(3, 1, pairs_kept=5)
    labels = np.array([0, 1, -1, 2, 2, 1, -1, 0])
    predictions = np.array([0, 2, 1, 2, 0, 1, 1, 1])
    activity.record(batch(range(8), 1), labels, predictions, step=8)
    kept = labels >= 0
    want_labels, want_predictions = labels[kept][-5:], predictions[kept][-5:]    # 1, 2, 2, 1, 0
    got_labels, got_predictions = activity.recent_pairs()
    assert got_labels.tolist() == want_labels.tolist() and got_predictions.tolist() == want_predictions.tolist()
    expected = np.zeros((3, 3), np.int64)
    for t, p in zip(want_labels, want_predictions):
        expected[t, p] += 1
    assert activity.confusion().tolist() == expected.tolist()
    assert activity.rolling_accuracy() == np.mean(want_labels == want_predictions)


def test_no_labels_means_no_accuracy_and_no_curve():
    activity = RecentActivity(10, 1)
    activity.record(batch(range(500), 1), np.full(500, -1), np.zeros(500, np.int64), step=500)
    assert activity.rolling_accuracy() is None
    assert activity.curve() == []
    assert activity.confusion().sum() == 0


def test_curve_is_bounded_and_keeps_the_whole_history_at_a_coarser_spacing():
    activity = RecentActivity(2, 1, pairs_kept=10, curve_points=8, curve_spacing=10)
    for step in range(5, 2001, 5):                         # 400 batches of 5 samples, all correct
        activity.record(batch([0] * 5, 1), np.zeros(5, np.int64), np.zeros(5, np.int64), step=step)
    curve = activity.curve()
    steps = [s for s, _ in curve]
    assert len(curve) < 8
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[0] <= 40 and steps[-1] >= 2000 - 2 * 320   # early points kept, recent ones present
    assert all(acc == 1.0 for _, acc in curve)


def test_curve_points_record_the_rolling_accuracy_at_their_step():
    activity = RecentActivity(2, 1, pairs_kept=4, curve_spacing=4)
    activity.record(batch([0] * 4, 1), np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), step=4)
    activity.record(batch([0] * 4, 1), np.array([1, 1, 1, 1]), np.array([0, 0, 0, 0]), step=8)
    assert activity.curve() == [(4, 0.75), (8, 0.0)]


def test_samples_per_second_counts_the_recent_window():
    activity = RecentActivity(2, 1, rate_window=2.0)
    activity.record(batch(range(100), 1), np.full(100, -1), np.zeros(100, np.int64), step=100, now=10.0)
    activity.record(batch(range(50), 1), np.full(50, -1), np.zeros(50, np.int64), step=150, now=11.5)
    assert activity.samples_per_second(now=11.9) == 75.0      # 150 samples over 2 s
    assert activity.samples_per_second(now=12.5) == 25.0      # the first batch left the window
    assert activity.samples_per_second(now=20.0) == 0.0


def test_the_manager_records_a_learned_request_even_if_its_client_went_away(mnist, running_manager):
    """In-process service layer: a learn call cancelled while its batch is learned (the client
    disconnected) is still learned, so it still enters the dashboard's window."""
    import asyncio

    X = mnist["train_images"][:300].reshape(-1, 784)
    y = mnist["train_labels"][:300].astype(np.int64)

    async def scenario():
        async with running_manager() as manager:
            first = asyncio.ensure_future(manager.learn("m", X[:200], y[:200].tolist(), [None] * 200))
            second = asyncio.ensure_future(manager.learn("m", X[200:], y[200:].tolist(), [None] * 100))
            await asyncio.sleep(0)           # both are queued for the learner ...
            while manager.models["m"].learner.queued_samples < 300:
                await asyncio.sleep(0.001)
            first.cancel()                   # ... then the first client goes away
            await second
            for _ in range(100):             # its (shielded) job still completes
                if manager.activity("m").recent_pairs()[0].size == 300:
                    break
                await asyncio.sleep(0.05)
            return manager.activity("m")

    activity = asyncio.run(scenario())
    labels, predictions = activity.recent_pairs()
    assert labels.tolist() == y.tolist()                      # all 300, in learning order
    assert [step for step, _ in activity.curve()] == [200, 300]
    assert np.array_equal(activity.recent_inputs(), X[-256:])
