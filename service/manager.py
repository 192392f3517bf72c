"""The service layer: named models, their learners, stored predictions and the durable log.

Knows nothing of HTTP. Per model there is exactly one writer (a :class:`~service.learner.Learner`
thread) fed in arrival order; a learn request is validated as a whole, de-duplicated by sample id,
appended to the store's log, queued, and answered once learned. Predictions read the learner's
latest published snapshot and never wait for learning.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import numpy as np
from pydantic import ValidationError

from model import PRESETS, Network, StateError, make_config
from model.state import encode_state_buffer
from service.activity import RecentActivity
from service.batching import PredictBatcher
from service.errors import (FeedbackConflict, InvalidInput, ModelExists, ModelNotFound, NotReady,
                            PredictionNotFound)
from service.events import (CheckpointPayload, EventKind, LearnEvent, decode_event, encode_checkpoint_buffer,
                            encode_event, feedback_sample_id)
from service.inputs import check_label
from service.learner import CallJob, Learner, LearnJob, LearnResult, lower_thread_priority
from service.retention import PredictionStore, SeenIds, StoredPrediction
from service.stores.base import CheckpointMeta, ModelRecord, Store, StoreError

log = logging.getLogger("hebb.manager")

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SAMPLE_ID = 256


class ModelStatus(str, enum.Enum):
    RECOVERING = "recovering"   # being restored from the store: not ready, rejects requests with 503
    READY = "ready"
    STOPPING = "stopping"


@dataclass
class ModelCounters:
    """Monotonic per-model counters exported as Prometheus metrics (one writer thread each)."""
    samples_learned: int = 0          # learner thread
    labels_learned: int = 0           # learner thread
    learn_batches: int = 0            # learner thread
    learn_seconds: float = 0.0        # learner thread
    predictions_served: int = 0       # event loop
    duplicate_samples: int = 0        # event loop
    feedback_applied: int = 0         # event loop


@dataclass
class ManagedModel:
    record: ModelRecord
    status: ModelStatus
    classes: int
    input_shape: tuple[int, int, int]
    config_digest: str
    predictions: PredictionStore
    learner: Learner | None = None
    counters: ModelCounters = field(default_factory=ModelCounters)
    # ids queued but not yet learned (the learner's SeenIds holds the learned ones)
    pending_ids: set[str] = field(default_factory=set)
    # orders (dedupe, log append, enqueue) so the log and the learner see the same order
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # a log append failed: it may have landed anyway (reply lost), so catch up before the next write
    log_uncertain: bool = False
    # recent inputs and prequential (label, prediction) pairs, for the dashboard (set by the manager)
    activity: RecentActivity | None = None
    # coalesces concurrent prediction requests into batched forward passes off the event loop
    batcher: PredictBatcher = field(default_factory=PredictBatcher)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def input_size(self) -> int:
        h, w, c = self.input_shape
        return h * w * c


@dataclass
class LearnOutcome:
    accepted: int
    step: int
    ids: list[str | None]             # of the learned samples, in order
    predictions: np.ndarray           # int64[accepted]
    probabilities: np.ndarray         # float32[accepted, classes]
    duplicates: list[str]


@dataclass
class PredictOutcome:
    step: int
    labels: np.ndarray
    probabilities: np.ndarray
    prediction_ids: list[str] | None


@dataclass
class CheckpointExport:
    """A consistent capture of one model, made on its learner thread between batches."""
    blob: bytes | memoryview
    step: int
    last_log_id: str | None
    config_digest: str


RecoverHook = Callable[["ModelManager", ModelRecord], Awaitable[None]]
CheckpointHook = Callable[["ModelManager", str], Awaitable[CheckpointMeta]]


class ModelManager:
    #: whether ``info`` computes the state digest (a read-only replica has no learning state to digest)
    reports_state_digest = True

    def __init__(self, store: Store, *, prediction_retention: int = 100_000, prediction_ttl: float = 3600.0,
                 seen_ids_window: int = 1_000_000, coalesce_samples: int = 1024, learner_nice: int = 0,
                 recover: RecoverHook | None = None, checkpointer: CheckpointHook | None = None):
        self.store = store
        self.prediction_retention = prediction_retention
        self.prediction_ttl = prediction_ttl
        self.seen_ids_window = seen_ids_window
        self.coalesce_samples = coalesce_samples
        self.learner_nice = learner_nice
        # checkpoints are encoded (tens of MB copied and hashed) on one thread at the learners'
        # priority: that CPU work yields to request handling like learning does
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hebb-checkpoint",
                                           initializer=lower_thread_priority, initargs=(learner_nice,))
        if recover is None or checkpointer is None:
            # recovery and checkpoint policy live in service.durability (imported here: it imports us)
            from service.durability import Durability
            policy = Durability()
            recover, checkpointer = recover or policy.recover, checkpointer or policy.checkpoint
        self._recover = recover
        self._checkpointer = checkpointer
        self.models: dict[str, ManagedModel] = {}
        self.started = False           # the registry has been loaded and every model recovered
        self.closing = False
        self.recovery_error: str | None = None

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Load the registry and recover every model (restore checkpoint, replay the log)."""
        try:
            records = await self.store.list_models()
            for record in records:
                self._register(record, ModelStatus.RECOVERING)
            for record in records:
                started = time.perf_counter()
                await self._recover(self, record)
                model = self.models[record.name]
                log.info("model recovered", extra={"model": record.name, "step": model.learner.net.samples_seen,
                                                   "seconds": round(time.perf_counter() - started, 3)})
        except Exception as exc:
            self.recovery_error = f"{type(exc).__name__}: {exc}"
            log.exception("recovery failed")
            raise
        self.started = True

    @property
    def ready(self) -> bool:
        """True when every model is loaded, caught up with the log and its learner is running."""
        return (self.started and not self.closing
                and all(m.status is ModelStatus.READY and m.learner is not None and m.learner.alive
                        for m in self.models.values()))

    def readiness(self) -> dict[str, Any]:
        return {"ready": self.ready, "started": self.started, "closing": self.closing,
                "error": self.recovery_error,
                "models": {name: m.status.value for name, m in self.models.items()}}

    async def close(self) -> None:
        """Graceful shutdown: stop taking writes, let every learner finish its queue."""
        self.closing = True
        for model in self.models.values():
            model.status = ModelStatus.STOPPING
        await asyncio.gather(*(asyncio.to_thread(m.learner.stop) for m in self.models.values() if m.learner))
        self._encoder.shutdown(wait=False)

    # ----------------------------------------------------------------- registry
    def _register(self, record: ModelRecord, status: ModelStatus) -> ManagedModel:
        config = record.network_config()
        model = ManagedModel(record=record, status=status, classes=config.classes,
                             input_shape=tuple(config.input_shape), config_digest=config.digest(),
                             predictions=PredictionStore(self.prediction_retention, self.prediction_ttl))
        model.activity = RecentActivity(model.classes, model.input_size)
        self.models[record.name] = model
        return model

    def attach(self, name: str, net: Network, seen_ids: Sequence[str] = (), last_log_id: str | None = None) -> None:
        """Give a registered model its network and start its learner (used by creation and recovery)."""
        model = self.models[name]
        if net.config.digest() != model.config_digest:
            raise StateError(f"network config of {name!r} does not match its registry record")
        learner = Learner(name, net, SeenIds(self.seen_ids_window, seen_ids), coalesce_samples=self.coalesce_samples,
                          last_log_id=last_log_id, on_batch=lambda n, k, s, c=model.counters: _count_batch(c, n, k, s),
                          nice=self.learner_nice)
        model.learner = learner
        learner.start()

    def mark_ready(self, name: str) -> None:
        self.models[name].status = ModelStatus.READY

    async def create_model(self, name: str, preset: str = "mnist", config: dict | None = None,
                           seed: int = 0) -> ManagedModel:
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            raise InvalidInput("name: must be 1-64 characters of letters, digits, '_', '.', '-', "
                               "starting with a letter or digit", "name")
        if preset not in PRESETS:
            raise InvalidInput(f"preset: unknown preset {preset!r} (available: {', '.join(sorted(PRESETS))})",
                               "preset")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidInput("seed: must be a non-negative integer", "seed")
        if name in self.models:
            raise ModelExists(f"name: model {name!r} already exists", "name")
        try:
            network = make_config(preset, config or None)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in ("config", *err["loc"]))
            raise InvalidInput(f"{where}: {err['msg']}", where) from exc
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"config: {exc}", "config") from exc
        record = ModelRecord(name=name, preset=preset, config=dict(config or {}), seed=seed,
                             network=network.model_dump(mode="json"))
        model = self._register(record, ModelStatus.RECOVERING)
        try:
            await self.store.save_model(record)
            net = await asyncio.to_thread(Network, network, seed, preset)
            self.attach(name, net)
        except BaseException:
            self.models.pop(name, None)
            raise
        self.mark_ready(name)
        log.info("model created", extra={"model": name, "preset": preset, "seed": seed})
        return model

    async def delete_model(self, name: str) -> None:
        model = self.get(name)
        model.status = ModelStatus.STOPPING
        del self.models[name]
        if model.learner is not None:
            await asyncio.to_thread(model.learner.stop)
        await self.store.delete_model(name)
        log.info("model deleted", extra={"model": name})

    def get(self, name: str) -> ManagedModel:
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"name: model {name!r} not found", "name")
        return model

    def _ready(self, name: str) -> ManagedModel:
        model = self.get(name)
        if model.status is not ModelStatus.READY or model.learner is None:
            raise NotReady(f"model {name!r} is {model.status.value}")
        return model

    # ----------------------------------------------------------------- learning
    async def learn(self, name: str, pixels: np.ndarray, labels: Sequence[Any], ids: Sequence[str | None],
                    *, kind: EventKind = EventKind.LEARN, prediction_id: str | None = None) -> LearnOutcome:
        """Predict-then-learn every sample not seen before, in order. ``pixels`` is uint8[n, size]
        (see ``service.inputs``); labels are validated here, the whole batch before anything."""
        model = self._ready(name)
        n = len(pixels)
        if len(labels) != n or len(ids) != n:
            raise InvalidInput("samples: need one label and one id slot per sample", "samples")
        if pixels.ndim != 2 or pixels.shape[1] != model.input_size or pixels.dtype != np.uint8:
            raise InvalidInput(f"samples: expected uint8 pixels of shape [n, {model.input_size}]", "samples")
        label_array = np.array([check_label(v, model.classes, f"samples[{i}].label") for i, v in enumerate(labels)],
                               np.int64)
        for i, sample_id in enumerate(ids):
            if sample_id is not None and (not isinstance(sample_id, str) or not 0 < len(sample_id) <= MAX_SAMPLE_ID):
                raise InvalidInput(f"samples[{i}].id: must be a non-empty string of at most {MAX_SAMPLE_ID} "
                                   "characters", f"samples[{i}].id")
        learner = model.learner
        async with model.write_lock:
            if model.log_uncertain:
                await self._catch_up_with_log(model)
            keep = np.ones(n, bool)
            duplicates: list[str] = []
            batch_ids: set[str] = set()
            for i, sample_id in enumerate(ids):
                if sample_id is None:
                    continue
                if sample_id in learner.seen or sample_id in model.pending_ids or sample_id in batch_ids:
                    keep[i] = False
                    duplicates.append(sample_id)
                else:
                    batch_ids.add(sample_id)
            model.counters.duplicate_samples += len(duplicates)
            if not keep.any():
                return LearnOutcome(0, learner.snapshot.samples_seen, [], np.empty(0, np.int64),
                                    np.empty((0, model.classes), np.float32), duplicates)
            kept_ids = [sample_id for sample_id, k in zip(ids, keep) if k]
            kept_pixels = pixels if keep.all() else pixels[keep]
            kept_labels = label_array if keep.all() else label_array[keep]
            event = LearnEvent(kind=kind, ids=kept_ids, pixels=kept_pixels, labels=kept_labels.tolist(),
                               prediction_id=prediction_id)
            if self.closing or model.status is not ModelStatus.READY:
                raise NotReady(f"model {name!r} is {model.status.value}")
            try:
                log_id = await self.store.append(name, encode_event(event))   # durable before acknowledged
            except StoreError:
                model.log_uncertain = True
                raise
            model.pending_ids.update(batch_ids)
            try:
                future = asyncio.wrap_future(learner.submit(LearnJob(kept_pixels, kept_labels, kept_ids, log_id)))
            except RuntimeError as exc:     # the model was deleted / the service stopped meanwhile
                model.pending_ids.difference_update(batch_ids)
                raise NotReady(f"model {name!r} is {model.status.value}") from exc
            future.add_done_callback(lambda _f: model.pending_ids.difference_update(batch_ids))
            future.add_done_callback(lambda f: _record_activity(model.activity, f, kept_pixels, kept_labels))
        # shielded: a client that goes away must not cancel a write that is already logged
        result: LearnResult = await asyncio.shield(future)
        return LearnOutcome(int(keep.sum()), result.step, kept_ids, result.predictions, result.probabilities,
                            duplicates)

    # ----------------------------------------------------------------- prediction
    async def predict(self, name: str, pixels: np.ndarray, *, keep: bool = True) -> PredictOutcome:
        """Predict with the latest published snapshot; ``keep`` stores them for feedback."""
        model = self._ready(name)
        if pixels.ndim != 2 or pixels.shape[1] != model.input_size or pixels.dtype != np.uint8:
            raise InvalidInput(f"inputs: expected uint8 pixels of shape [n, {model.input_size}]", "inputs")
        snapshot = model.learner.snapshot
        probas = await model.batcher.submit(snapshot.predict_proba_many, pixels)
        labels = probas.argmax(axis=1)
        model.counters.predictions_served += len(pixels)
        ids = None
        if keep and self.prediction_retention > 0:
            ids = [uuid.uuid4().hex for _ in range(len(pixels))]
            model.predictions.add_many(ids, pixels, labels, probas, snapshot.samples_seen)
        return PredictOutcome(snapshot.samples_seen, labels, probas, ids)

    def get_prediction(self, name: str, prediction_id: str) -> StoredPrediction:
        item = self.get(name).predictions.get(prediction_id)
        if item is None:
            raise PredictionNotFound(f"prediction_id: prediction {prediction_id!r} of model {name!r} is unknown or expired",
                                     "prediction_id")
        return item

    async def feedback(self, name: str, prediction_id: str, label: Any) -> tuple[StoredPrediction, LearnOutcome]:
        """Learn a stored prediction's input with its true label (at most once per prediction)."""
        model = self._ready(name)
        item = self.get_prediction(name, prediction_id)
        check_label(label, model.classes, "label")
        if label is None or label == -1:
            raise InvalidInput("label: feedback needs a class label", "label")
        if item.feedback_label is not None:
            raise FeedbackConflict(f"prediction_id: prediction {prediction_id!r} already has feedback", "prediction_id")
        outcome = await self.learn(name, item.pixels[None], [label], [feedback_sample_id(prediction_id)],
                                   kind=EventKind.FEEDBACK, prediction_id=prediction_id)
        if outcome.accepted == 0:
            raise FeedbackConflict(f"prediction_id: prediction {prediction_id!r} already has feedback", "prediction_id")
        stored = model.predictions.set_feedback(prediction_id, int(label), outcome.step)
        if stored is None:  # expired meanwhile: answer from the copy read above
            item.feedback_label, item.feedback_step = int(label), outcome.step
        item = stored or item
        model.counters.feedback_applied += 1
        return item, outcome

    # ----------------------------------------------------------------- introspection
    async def on_learner(self, name: str, fn: Callable[[Network], Any]) -> Any:
        """Run ``fn(net)`` on the model's learner thread after every write queued so far."""
        model = self.get(name)
        if model.learner is None or not model.learner.alive:
            raise NotReady(f"model {name!r} is {model.status.value}")
        return await asyncio.wrap_future(model.learner.submit(CallJob(fn)))

    async def info(self, name: str) -> dict[str, Any]:
        model = self.get(name)
        base = {"name": name, "preset": model.record.preset, "seed": model.record.seed,
                "config": model.record.config, "config_digest": model.config_digest, "status": model.status.value,
                "input_shape": list(model.input_shape), "classes": model.classes,
                "created_at": model.record.created_at}
        if model.learner is None or not model.learner.alive:
            return {**base, "samples_seen": None, "labels_seen": None, "prequential_accuracy": None, "step": None,
                    "state_digest": None, "checkpoint": None}

        def read(net: Network) -> dict[str, Any]:
            return {"samples_seen": net.samples_seen, "labels_seen": net.labels_seen,
                    "prequential_accuracy": net.prequential_accuracy, "step": net.samples_seen,
                    "state_digest": net.state_digest() if self.reports_state_digest else None}

        state = await self.on_learner(name, read)
        try:
            latest = await self.store.latest_checkpoint(name)
        except StoreError:
            latest = None
        return {**base, **state, "checkpoint": latest.to_dict() if latest else None,
                "queued_samples": model.learner.queued_samples, "stored_predictions": len(model.predictions)}

    def activity(self, name: str) -> RecentActivity:
        """The model's recent inputs, prequential pairs and learning curve (read-only use)."""
        return self.get(name).activity

    async def stats(self, name: str) -> dict[str, Any]:
        return await self.on_learner(name, lambda net: net.stats())

    # ----------------------------------------------------------------- checkpoints (used by durability)
    async def export_checkpoint(self, name: str) -> CheckpointExport:
        """Capture network state, seen ids and log position consistently (on the learner thread)."""
        model = self.get(name)

        def capture(net: Network) -> tuple[dict, list[str], str | None, int]:
            return net.state_dict(), model.learner.seen.to_list(), model.learner.last_log_id, net.samples_seen

        state, seen, last_log_id, step = await self.on_learner(name, capture)

        def encode() -> memoryview:
            return encode_checkpoint_buffer(CheckpointPayload(encode_state_buffer(state), seen, last_log_id))

        blob = await asyncio.get_running_loop().run_in_executor(self._encoder, encode)
        return CheckpointExport(blob, step, last_log_id, model.config_digest)

    async def checkpoint(self, name: str) -> CheckpointMeta:
        """Save a checkpoint of ``name`` to the store."""
        return await self._checkpointer(self, name)

    async def _catch_up_with_log(self, model: ManagedModel) -> None:
        """After a failed append (e.g. Redis died before replying), learn the log entries past the
        learner's position — ones that landed although unacknowledged — so memory equals the log
        again and their ids count as seen. Called under the model's write lock."""
        last_applied = await self.on_learner(model.name, lambda net: model.learner.last_log_id)  # queue drained
        async for log_id, blob in self.store.read_log(model.name, last_applied):
            event = decode_event(blob)
            labels = np.asarray(event.labels, np.int64)
            await asyncio.wrap_future(model.learner.submit(LearnJob(event.pixels, labels, event.ids, log_id)))
            log.warning("learned a log entry whose append had failed", extra={"model": model.name, "log_id": log_id,
                                                                            "samples": len(event)})
        model.log_uncertain = False


def _record_activity(activity: RecentActivity, future: asyncio.Future, pixels: np.ndarray,
                     labels: np.ndarray) -> None:
    """Feed the dashboard's window once a job is learned: in learning order, and even when the
    client that sent it went away meanwhile."""
    if not future.cancelled() and future.exception() is None:
        result: LearnResult = future.result()
        activity.record(pixels, labels, result.predictions, result.step)


def _count_batch(counters: ModelCounters, samples: int, labels: int, seconds: float) -> None:
    counters.samples_learned += samples
    counters.labels_learned += labels
    counters.learn_batches += 1
    counters.learn_seconds += seconds

