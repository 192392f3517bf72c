"""Prometheus metrics (``hebb_`` names). Per-model values are read from the manager at scrape time,
so a deleted model's series disappear with it; request latencies are a histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.manager import ModelManager

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ManagerCollector(Collector):
    def __init__(self, manager_getter):
        self._manager_getter = manager_getter

    def collect(self):
        manager: ModelManager | None = self._manager_getter()
        if manager is None:
            return
        c = {key: CounterMetricFamily(f"hebb_{key}", doc, labels=["model"]) for key, doc in (
            ("samples_learned", "samples learned (predicted, then learned)"),
            ("labels_learned", "labeled samples learned"),
            ("learn_batches", "learner calls (queued requests are merged into one call)"),
            ("learn_seconds", "time spent learning"),
            ("predictions_served", "predictions served (v1 predict and v2 infer)"),
            ("duplicate_samples", "samples skipped because their id was seen before"),
            ("feedback_applied", "delayed labels learned through feedback"))}
        g = {key: GaugeMetricFamily(f"hebb_{key}", doc, labels=["model"]) for key, doc in (
            ("prequential_accuracy", "accuracy of predict-then-learn over every labeled sample"),
            ("model_step", "samples the model has learned (its step)"),
            ("learn_queue_samples", "samples queued for the learner"),
            ("stored_predictions", "predictions kept for delayed feedback"),
            ("model_ready", "1 when the model is loaded and caught up"))}
        for name, model in list(manager.models.items()):
            counters = model.counters
            for key in c:
                c[key].add_metric([name], getattr(counters, key))
            learner = model.learner
            snapshot = learner.snapshot if learner is not None else None
            net = learner.net if learner is not None else None
            accuracy = net.prequential_accuracy if net is not None else None
            g["prequential_accuracy"].add_metric([name], float("nan") if accuracy is None else accuracy)
            g["model_step"].add_metric([name], snapshot.samples_seen if snapshot is not None else 0)
            g["learn_queue_samples"].add_metric([name], learner.queued_samples if learner is not None else 0)
            g["stored_predictions"].add_metric([name], len(model.predictions))
            g["model_ready"].add_metric([name], 1.0 if model.status.value == "ready" else 0.0)
        yield from c.values()
        yield from g.values()
        ready = GaugeMetricFamily("hebb_ready", "1 when every model is loaded and caught up")
        ready.add_metric([], 1.0 if manager.ready else 0.0)
        yield ready
        count = GaugeMetricFamily("hebb_models", "models held by the service")
        count.add_metric([], len(manager.models))
        yield count


class Metrics:
    """One registry per app (several apps can live in one process, e.g. in tests)."""

    def __init__(self, manager_getter):
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_seconds = Histogram("hebb_request_duration_seconds", "HTTP request latency",
                                         ["method", "route", "status"], buckets=LATENCY_BUCKETS,
                                         registry=self.registry)
        self.registry.register(ManagerCollector(manager_getter))
