"""Scale-out roles of ``hebb serve --role``: what a process does with the models in a shared Redis store.

* ``all`` (default) — one process learns and predicts every model (:class:`ModelManager` as is).
* ``learner`` — :class:`LearnerManager`: learns only the models whose lease it holds
  (:mod:`service.lease`); is a hot standby for the others (their kernels compiled in advance),
  answering their requests with 503 + ``Retry-After`` (:class:`NotLeader`). A dedicated thread
  renews the held leases every ``lease_ttl/3``; the event loop steps down from lost ones and takes
  free ones; taking over = restore the newest checkpoint, replay the log after it, go ready. Every write is fenced by the lease token, so a deposed learner's writes are rejected
  and it steps down. Each ``publish_every_seconds`` it publishes a changed model's serving state
  (:mod:`service.replica`) for predictors.
* ``predictor`` — :class:`PredictorManager`: serves predictions of every model from the latest
  published serving state (else the newest checkpoint), hot-reloads on each pub/sub announcement
  (and polls as a safety net for missed messages), never writes: learning, feedback and model
  management get 409 ``wrong_role``.

One model's learning is sequential (one lease holder); models shard across learners; predictors
scale horizontally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import numpy as np

from model import Network, StateError, encode_state, make_config
from service.durability import Durability, load_newest_valid
from service.errors import ModelExists, NotLeader, WrongRole
from service.lease import LeaseRenewer, Leases
from service.manager import MODEL_NAME, ManagedModel, ModelManager, ModelStatus
from service.replica import ReplicaBuilder, ServingChannel, decode_message
from service.settings import Settings
from service.stores.base import CheckpointMeta, Fenced, ModelRecord, Store, StoreError
from service.stores.redis_store import RedisStore

log = logging.getLogger("hebb.roles")

# a predictor re-reads the registry and the published steps this often, in case a pub/sub
# message was missed (pub/sub is fire-and-forget: nothing is delivered while disconnected)
PREDICTOR_POLL_SECONDS = 2.0
# how often a learner looks for free leases (and steps down from lost ones)
LEASE_PASS_SECONDS = 0.5


def build_role(settings: Settings, store: Store, **manager_options: Any) -> tuple[ModelManager, Durability]:
    """The manager and durability policy of ``settings.role`` (call with the store open)."""
    durability = Durability(settings.checkpoint_every_samples, settings.checkpoint_every_seconds,
                            store_retry_seconds=settings.store_retry_after_seconds)
    if settings.role == "all":
        return ModelManager(store, recover=durability.recover, checkpointer=durability.checkpoint,
                            **manager_options), durability
    if not isinstance(store, RedisStore):
        raise ValueError(f"role {settings.role!r} needs a Redis store, not {store.url!r}")
    if settings.role == "learner":
        return LearnerManager(store, settings, recover=durability.recover, checkpointer=durability.checkpoint,
                              **manager_options), durability
    return PredictorManager(store, **manager_options), ReadOnlyDurability(store_retry_seconds=1.0)


# --------------------------------------------------------------------------------------- learner


class LearnerManager(ModelManager):
    """Learns the models whose lease it holds; standby for the others."""

    role = "learner"

    def __init__(self, store: RedisStore, settings: Settings, **options: Any):
        super().__init__(store, **options)
        self.store: RedisStore = store
        self.lease_ttl = settings.lease_ttl_seconds
        self.publish_every = settings.publish_every_seconds
        self.max_models = settings.learner_max_models
        self.leases = Leases(store, self.lease_ttl)
        self.renewer = LeaseRenewer(store, self.lease_ttl)
        self.serving = ServingChannel(store)
        self.tokens: dict[str, str] = {}          # models led by this learner -> lease token
        self.standby: dict[str, ModelRecord] = {}  # models led by another learner (or by nobody yet)
        self._published: dict[str, int] = {}      # step last published per model
        self._takeovers: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._warm_ups: dict[str, asyncio.Task] = {}   # per config: compiling its kernels (see _warm_up)

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Take the free leases (recovering those models in the background), then keep leases and publish."""
        if not self.renewer.is_alive():
            self.renewer.start()
        await self._lease_pass()
        self.started = True
        self._tasks += [asyncio.create_task(self._keep_leases(), name="hebb-leases"),
                        asyncio.create_task(self._publish_loop(), name="hebb-publish")]

    @property
    def ready(self) -> bool:
        """Leads at least one model (or there is none yet) and every led model is caught up. A pure
        standby is not ready, so a load balancer sends writes to the active learners only."""
        leads_or_nothing_to_lead = bool(self.tokens) or not self.standby
        return leads_or_nothing_to_lead and super().ready

    def readiness(self) -> dict[str, Any]:
        return {**super().readiness(), "role": self.role, "leading": sorted(self.tokens),
                "standby": sorted(self.standby)}

    async def close(self) -> None:
        """Stop keeping leases, drain the learners, then release the leases so a standby takes over at once."""
        tasks = [*self._tasks, *self._takeovers.values(), *self._warm_ups.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await super().close()
        await asyncio.to_thread(self.renewer.stop)
        for name, token in list(self.tokens.items()):
            with contextlib.suppress(StoreError):
                await self.leases.release(name, token)
            self.store.fences.pop(name, None)
        self.tokens.clear()

    # ----------------------------------------------------------------- leases
    async def _keep_leases(self) -> None:
        while True:
            # taking a free lease is one SET NX: look often, so a takeover starts right at expiry
            await asyncio.sleep(min(self.lease_ttl / 3, LEASE_PASS_SECONDS))
            try:
                await self._lease_pass()
            except StoreError as exc:
                log.warning("lease pass failed", extra={"error": str(exc)})

    async def _lease_pass(self) -> None:
        """Step down from lost or lapsed leases (renewed by :class:`LeaseRenewer`), refresh the
        registry, take free leases."""
        lost = self.renewer.lost()
        for name in list(self.tokens):
            if name in lost:
                await self._step_down(name, "lease taken over by another learner")
            elif self.renewer.seconds_since_renewal(name) >= self.lease_ttl:
                # not renewed for a whole ttl: it has expired, another learner may hold it by now
                await self._step_down(name, "lease not renewed within its ttl")
        records = await self.store.list_models()
        self.standby = {r.name: r for r in records if r.name not in self.tokens}
        for record in records:
            if record.name in self.tokens or not self._warm_up(record).done():
                continue        # lead a model only once its kernels are compiled (see _warm_up)
            if self.max_models and len(self.tokens) >= self.max_models:
                break
            token = await self.leases.acquire(record.name)
            if token is not None:
                self._take_over(record, token)

    def _warm_up(self, record: ModelRecord) -> asyncio.Task:
        """Compile the engine's kernels for a model's config before leading it (once per config).
        The numba JIT of a process's first learn can hold the GIL for seconds on a loaded machine:
        holding a lease meanwhile would let it lapse, and it would slow a takeover's replay."""
        key = json.dumps(record.network, sort_keys=True)   # never raises: a bad record fails in its warm-up
        if key not in self._warm_ups:
            self._warm_ups[key] = asyncio.create_task(_warm_up_logged(record), name="hebb-warm-up")
        return self._warm_ups[key]

    def _hold(self, name: str, token: str) -> None:
        self.tokens[name] = token
        self.renewer.hold(name, token)
        self.store.fences[name] = token        # from now on every write of this model is fenced
        self.standby.pop(name, None)

    def _take_over(self, record: ModelRecord, token: str) -> None:
        log.info("lease taken, taking the model over", extra={"model": record.name, "owner": self.leases.owner})
        self._hold(record.name, token)
        self._register(record, ModelStatus.RECOVERING)
        self._takeovers[record.name] = asyncio.create_task(self._recover_led(record), name=f"hebb-takeover-{record.name}")

    async def _recover_led(self, record: ModelRecord) -> None:
        started = time.perf_counter()
        try:
            await self._recover(self, record)       # newest checkpoint + log replay, then ready
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.recovery_error = f"{record.name}: {type(exc).__name__}: {exc}"
            log.exception("takeover failed", extra={"model": record.name})
            return
        finally:
            self._takeovers.pop(record.name, None)
        log.info("model taken over", extra={"model": record.name,
                                            "seconds": round(time.perf_counter() - started, 3)})

    async def _step_down(self, name: str, reason: str) -> None:
        """Stop learning ``name``: its writes are fenced anyway; queued (already logged) jobs drain."""
        token = self.tokens.pop(name, None)
        self.renewer.drop(name)
        self.store.fences.pop(name, None)
        takeover = self._takeovers.pop(name, None)
        if takeover is not None:
            takeover.cancel()
        model = self.models.pop(name, None)
        if model is not None:
            model.status = ModelStatus.STOPPING
            self.standby[name] = model.record
            if model.learner is not None:
                await asyncio.to_thread(model.learner.stop)
        if token is not None:
            log.warning("stepped down", extra={"model": name, "reason": reason})

    # ----------------------------------------------------------------- requests
    def get(self, name: str) -> ManagedModel:
        if name not in self.models and name in self.standby:
            raise NotLeader(f"name: this learner is a standby for model {name!r}, another learner leads it; "
                            "retry (the active learner answers)", "name")
        return super().get(name)

    async def create_model(self, name: str, preset: str = "mnist", config: dict | None = None,
                           seed: int = 0) -> ManagedModel:
        """Take the new model's lease first, so no other learner can take it while it is created."""
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            return await super().create_model(name, preset, config, seed)   # raises its validation error
        if name in self.standby:
            raise ModelExists(f"name: model {name!r} already exists", "name")
        try:
            make_config(preset, config or None)
        except Exception:   # noqa: BLE001 - the base class turns it into the right 422
            return await super().create_model(name, preset, config, seed)
        await asyncio.shield(self._warm_up(ModelRecord(name=name, preset=preset, config=dict(config or {}), seed=seed)))
        token = await self.leases.acquire(name)
        if token is None:
            raise ModelExists(f"name: model {name!r} already exists (another learner holds it)", "name")
        if any(r.name == name for r in await self.store.list_models()):
            await self.leases.release(name, token)   # exists, leader gone: the lease pass takes it over
            raise ModelExists(f"name: model {name!r} already exists", "name")
        self._hold(name, token)
        try:
            return await super().create_model(name, preset, config, seed)
        except BaseException:
            self.tokens.pop(name, None)
            self.renewer.drop(name)
            self.store.fences.pop(name, None)
            with contextlib.suppress(StoreError):
                await self.leases.release(name, token)
            raise

    async def delete_model(self, name: str) -> None:
        self.get(name)
        token = self.tokens.get(name)
        await super().delete_model(name)         # also deletes the lease key
        self.tokens.pop(name, None)
        self.renewer.drop(name)
        self._published.pop(name, None)
        self.store.fences.pop(name, None)
        if token is not None:
            with contextlib.suppress(StoreError):
                await self.serving.forget(name)

    # ----------------------------------------------------------------- publishing for predictors
    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(self.publish_every)
            for name in list(self.tokens):
                model = self.models.get(name)
                if model is None or model.status is not ModelStatus.READY or model.learner is None:
                    continue
                if self._published.get(name) == model.learner.snapshot.samples_seen:
                    continue
                try:
                    await self.publish(name)
                except Fenced as exc:
                    await self._step_down(name, str(exc))
                except StoreError as exc:
                    log.warning("publish failed", extra={"model": name, "error": str(exc)})

    async def publish(self, name: str) -> int:
        """Publish the model's serving state now (consistent: captured on its learner thread); returns its step."""
        token = self.tokens.get(name)
        if token is None:
            raise NotLeader(f"name: this learner does not lead model {name!r}", "name")
        # only the serving arrays are copied on the learner thread (not the readout's statistics)
        state, step = await self.on_learner(name, lambda net: (net.state_dict(serving=True), net.samples_seen))
        blob = await asyncio.to_thread(encode_state, state)
        await self.serving.publish(name, token, blob, step)
        self._published[name] = step
        return step


# samples a warm-up learns: several engine chunks (pipelined stages) and full readout buffers, so
# every kernel a replay uses gets compiled
WARM_UP_SAMPLES = 768


def warm_up(record: ModelRecord) -> None:
    """Learn and predict noise on a throwaway network of the record's config (compiles the kernels)."""
    net = Network(record.network_config(), record.seed, record.preset)
    size = int(np.prod(net.config.input_shape))
    noise = np.random.default_rng(0).integers(0, 256, (WARM_UP_SAMPLES, size), dtype=np.uint8)
    labels = np.arange(WARM_UP_SAMPLES) % net.config.classes
    labels[::7] = -1                                    # the unlabeled path too
    net.learn_many(noise, labels)
    net.predict_proba_many(noise[:4])


async def _warm_up_logged(record: ModelRecord) -> None:
    started = time.perf_counter()
    try:
        await asyncio.to_thread(warm_up, record)
    except Exception:   # noqa: BLE001 - a failed warm-up only costs speed later
        log.exception("warm-up failed", extra={"model": record.name})
        return
    log.info("kernels compiled", extra={"model": record.name, "preset": record.preset,
                                        "seconds": round(time.perf_counter() - started, 3)})


# ------------------------------------------------------------------------------------- predictor


class PredictorManager(ModelManager):
    """Serves every model read-only from what the learners publish; hot-reloads on announcements."""

    role = "predictor"
    reports_state_digest = False   # a replica lacks the readout's learning state: its digest means nothing

    def __init__(self, store: RedisStore, **options: Any):
        super().__init__(store, **options)
        self.store: RedisStore = store
        self.serving = ServingChannel(store)
        self.builders: dict[str, ReplicaBuilder] = {}
        self._dirty: set[str] = set()             # models announced (or seen) with a newer step
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.reloads = 0

    async def start(self) -> None:
        records = await self.store.list_models()
        for record in records:
            await self._add(record)
        self.started = True
        self._tasks = [asyncio.create_task(self._listen(), name="hebb-subscribe"),
                       asyncio.create_task(self._poll(), name="hebb-poll"),
                       asyncio.create_task(self._reload_loop(), name="hebb-reload")]

    def readiness(self) -> dict[str, Any]:
        return {**super().readiness(), "role": self.role}

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await super().close()

    # ----------------------------------------------------------------- loading replicas
    async def _load(self, name: str) -> Network:
        """The newest published serving state; else the newest checkpoint; else the model as created."""
        builder = self.builders[name]
        blob = await self.serving.fetch(name)
        if blob is not None:
            try:
                return await asyncio.to_thread(builder.build, blob)
            except (StateError, ValueError) as exc:
                log.warning("unusable serving state, trying the checkpoints", extra={"model": name, "error": str(exc)})
        restored = await load_newest_valid(self.store, builder.record, builder.config.digest())
        if restored is not None:
            return restored.net
        return await asyncio.to_thread(builder.fresh)

    async def _add(self, record: ModelRecord) -> None:
        self.builders[record.name] = ReplicaBuilder(record)
        self._register(record, ModelStatus.RECOVERING)
        try:
            net = await self._load(record.name)
        except BaseException:
            self.models.pop(record.name, None)
            self.builders.pop(record.name, None)
            raise
        self.attach(record.name, net)
        self.mark_ready(record.name)
        log.info("replica loaded", extra={"model": record.name, "step": net.samples_seen})

    async def _reload(self, name: str) -> None:
        model = self.models.get(name)
        if model is None or model.status is not ModelStatus.READY:
            return
        net = await self._load(name)
        if self.models.get(name) is not model or model.learner is None:
            return                                  # deleted meanwhile
        if net.samples_seen == model.learner.snapshot.samples_seen:
            return
        old = model.learner
        self.attach(name, net)                      # predictions switch to the new snapshot at once
        self.reloads += 1
        await asyncio.to_thread(old.stop)

    async def _drop(self, name: str) -> None:
        model = self.models.pop(name, None)
        self.builders.pop(name, None)
        if model is not None:
            model.status = ModelStatus.STOPPING
            if model.learner is not None:
                await asyncio.to_thread(model.learner.stop)
            log.info("replica dropped (model deleted)", extra={"model": name})

    # ----------------------------------------------------------------- staying current
    def _mark(self, name: str) -> None:
        self._dirty.add(name)
        self._wake.set()

    async def _reload_loop(self) -> None:
        """Applies announcements one model at a time; a burst of them costs one reload (the newest)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                name = self._dirty.pop()
                try:
                    await self._reload(name)
                except (StoreError, StateError, ValueError) as exc:
                    log.warning("reload failed, keeping the current replica", extra={"model": name, "error": str(exc)})

    async def _listen(self) -> None:
        """Pub/sub: each announcement marks its model for reload; reconnects after a Redis outage."""
        while True:
            pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.serving.channel)
                for name in list(self.models):     # anything published while not subscribed
                    self._mark(name)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    parsed = decode_message(message["data"])
                    if parsed is not None and parsed[0] in self.models:
                        model = self.models[parsed[0]]
                        if model.learner is None or model.learner.snapshot.samples_seen != parsed[1]:
                            self._mark(parsed[0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # Redis down or connection dropped: resubscribe shortly
                log.warning("subscription lost, resubscribing", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _poll(self) -> None:
        """Safety net: new and deleted models, and steps whose announcement was missed."""
        while True:
            await asyncio.sleep(PREDICTOR_POLL_SECONDS)
            try:
                records = {r.name: r for r in await self.store.list_models()}
                for name in [n for n in self.models if n not in records
                             or records[n].created_at != self.models[n].record.created_at]:
                    await self._drop(name)
                for name, record in records.items():
                    if name not in self.models:
                        await self._add(record)
                    else:
                        learner = self.models[name].learner
                        step = await self.serving.step(name)
                        if step is not None and learner is not None and step != learner.snapshot.samples_seen:
                            self._mark(name)
            except (StoreError, StateError, ValueError) as exc:
                log.warning("predictor poll failed", extra={"error": str(exc)})

    # ----------------------------------------------------------------- read-only
    def _refuse(self, what: str) -> WrongRole:
        return WrongRole(f"role: this server runs with --role predictor (read-only); {what} goes to a learner", "role")

    async def learn(self, name: str, *args: Any, **kwargs: Any):
        raise self._refuse("learning")

    async def feedback(self, name: str, prediction_id: str, label: Any):
        raise self._refuse("feedback")

    async def create_model(self, name: str, *args: Any, **kwargs: Any):
        raise self._refuse("creating a model")

    async def delete_model(self, name: str) -> None:
        raise self._refuse("deleting a model")

    async def checkpoint(self, name: str) -> CheckpointMeta:
        raise self._refuse("checkpointing")



class ReadOnlyDurability(Durability):
    """A predictor neither checkpoints nor recovers a log: it only reads what learners publish."""

    def start(self, manager: ModelManager) -> None:
        pass

    async def close(self, manager: ModelManager) -> None:
        pass
