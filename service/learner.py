"""The single writer of one model: a thread that applies learn jobs in arrival order and, after each
batch, publishes a fresh prediction snapshot. numba releases the GIL, so learning runs in parallel
with the event loop serving predictions from the last published snapshot."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from model import Network
from service.retention import SeenIds

log = logging.getLogger("hebb.learner")


@dataclass
class LearnResult:
    predictions: np.ndarray       # int64[n] prequential predictions
    probabilities: np.ndarray     # float32[n, classes]
    step: int                     # samples_seen after this job


@dataclass
class LearnJob:
    pixels: np.ndarray            # uint8[n, size]
    labels: np.ndarray            # int64[n], -1 unlabeled
    ids: list[str | None]
    log_id: str | None
    future: Future = field(default_factory=Future)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class CallJob:
    """Run ``fn(network)`` on the learner thread between batches (consistent reads, checkpoints)."""
    fn: Callable[[Network], Any]
    future: Future = field(default_factory=Future)


_STOP = object()


class Learner:
    def __init__(self, name: str, net: Network, seen: SeenIds, *, coalesce_samples: int = 1024,
                 last_log_id: str | None = None,
                 on_batch: Callable[[int, int, float], None] | None = None, nice: int = 0):
        self.name = name
        self.net = net
        self.seen = seen
        self.coalesce_samples = coalesce_samples
        self.nice = nice                        # >0: this thread yields the CPU to request handling
        self.last_log_id = last_log_id          # newest log entry applied to ``net``
        self.snapshot = net.snapshot()          # replaced (never mutated) after every batch
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # depth = submitted - applied; each counter has a single writer thread
        self._submitted_samples = 0
        self._applied_samples = 0
        self._thread = threading.Thread(target=self._run, name=f"hebb-learner-{name}", daemon=True)
        self._stopped = False

    # ----------------------------------------------------------------- called from the event loop
    def start(self) -> None:
        self._thread.start()

    def submit(self, job: LearnJob | CallJob) -> Future:
        if self._stopped:
            raise RuntimeError(f"learner for {self.name!r} is stopped")
        if isinstance(job, LearnJob):
            self._submitted_samples += len(job)
        self._queue.put(job)
        return job.future

    @property
    def queued_samples(self) -> int:
        return max(self._submitted_samples - self._applied_samples, 0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Finish every queued job, then end the thread (blocking; call it off the event loop)."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ----------------------------------------------------------------- learner thread
    def _run(self) -> None:
        lower_thread_priority(self.nice)
        carry = None
        while True:
            job = carry if carry is not None else self._queue.get()
            carry = None
            if job is _STOP:
                return
            if isinstance(job, CallJob):
                self._call(job)
                continue
            batch = [job]
            size = len(job)
            # merge whatever else is already queued: learn_many is chunking-invariant, so one call
            # over the concatenation equals the jobs one by one, and costs less per sample
            while size < self.coalesce_samples:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, LearnJob):
                    carry = nxt
                    break
                batch.append(nxt)
                size += len(nxt)
            self._learn(batch)

    def _call(self, job: CallJob) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn(self.net))
        except BaseException as exc:  # reported to the caller, the thread lives on
            job.future.set_exception(exc)

    def _learn(self, batch: list[LearnJob]) -> None:
        started = time.perf_counter()
        n = sum(len(job) for job in batch)
        try:
            pixels = batch[0].pixels if len(batch) == 1 else np.concatenate([j.pixels for j in batch])
            labels = batch[0].labels if len(batch) == 1 else np.concatenate([j.labels for j in batch])
            step0 = self.net.samples_seen
            preds, probas = self.net.learn_many_scores(pixels, labels)
        except BaseException as exc:
            log.exception("learning failed", extra={"model": self.name, "samples": n})
            self._applied_samples += n
            for job in batch:
                _resolve(job.future, exception=exc)
            return
        for job in batch:
            self.seen.update(job.ids)
            if job.log_id is not None:
                self.last_log_id = job.log_id
        self.snapshot = self.net.snapshot()
        self._applied_samples += n
        if self._on_batch is not None:
            self._on_batch(n, int((labels >= 0).sum()), time.perf_counter() - started)
        offset = 0
        for job in batch:
            stop = offset + len(job)
            _resolve(job.future, LearnResult(preds[offset:stop], probas[offset:stop], step0 + stop))
            offset = stop


def _resolve(future: Future, result: Any = None, exception: BaseException | None = None) -> None:
    """Complete a job's future unless its caller already cancelled it (the job is applied anyway)."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except Exception:  # InvalidStateError: cancelled by the caller
        pass


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value by ``nice`` (Linux schedules threads individually)."""
    if not nice:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    except (OSError, AttributeError) as exc:  # not Linux / not permitted: keep the default priority
        log.warning("could not lower a background thread's priority", extra={"error": str(exc)})
