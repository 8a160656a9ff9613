"""The daemon's runtime: which rollouts to reconcile, when, by whom, and how it stops.

* **Sources.** A store with a watch (the Kubernetes one: ``list_with_version`` + ``watch``) is
  listed once, then watched from the list's resourceVersion in a thread of its own; 410 Expired
  lists again, any other failure reconnects from the last resourceVersion with a capped
  exponential backoff. A store without a watch (the local file store) is listed every
  ``resync`` seconds. Either way every known rollout is queued again every ``resync`` seconds,
  so a missed event delays a pass, never loses it.
* **Queue and workers.** Keys go through :class:`~analyzer.controller.queue.WorkQueue` (dedup, one
  pass of a key at a time, requeue timers from ``PassResult.requeue_after``, per-key backoff
  after a failed pass) to ``workers`` asyncio tasks.
* **Leadership.** With a leader elector only the leader takes keys. Losing the Lease cancels the
  passes in flight and drops the queue at once; a pass whose blocking call is still running in a
  thread can no longer write, because the store and the traffic objects are wrapped in a guard
  that refuses every write while we are not the leader (:class:`NotLeader`). Gaining the Lease
  queues every rollout (the new leader starts from the store, where all progress lives).
* **Shutdown** (``stop`` set, e.g. by SIGTERM): no new passes start, the passes in flight finish
  (up to ``drain_timeout``), then the Lease is released so another replica takes over at once.

Every pass runs with the rollout key bound in structlog's context, so each log line of a pass
names its rollout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from analyzer.controller.metrics import ControllerMetrics
from analyzer.controller.queue import Key, ShutDown, WorkQueue, key_text
from analyzer.controller.reconcile import Controller, reconcile

log = structlog.get_logger("analyzer.runtime")

WATCH_SECONDS = 60  # one watch request; the server ends it and we reconnect from the last RV
PASS_TIMEOUT = 120.0  # one reconcile (all its immediate passes); a hung one is abandoned and retried


class NotLeader(RuntimeError):
    """A write was refused because this replica does not hold the Lease (any more)."""


class Elector(Protocol):
    """What the runtime needs of :class:`analyzer.kube.lease.LeaderElector`."""

    identity: str

    def is_leader(self) -> bool: ...

    async def run(self, on_started_leading: Any = None, on_stopped_leading: Any = None,
                  stop: asyncio.Event | None = None, *, release_on_stop: bool = True) -> None: ...


# ---------------------------------------------------------------------- write guards


class GuardedStore:
    """A :class:`~analyzer.ports.RolloutStore` whose writes need ``allowed()`` (the Lease)."""

    def __init__(self, inner: Any, allowed: Callable[[], bool]) -> None:
        self.inner, self.allowed = inner, allowed

    def _check(self, what: str) -> None:
        if not self.allowed():
            raise NotLeader(f"{what}: not the leader")

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.inner.get(namespace, name)
        return result

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.inner.list(namespace)
        return result

    def update_status(self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str) -> dict[str, Any]:
        self._check(f"update status of {namespace}/{name}")
        result: dict[str, Any] = self.inner.update_status(namespace, name, status, resource_version)
        return result

    def patch_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        self._check(f"patch spec of {namespace}/{name}")
        result: dict[str, Any] = self.inner.patch_spec(namespace, name, patch)
        return result

    def __getattr__(self, attr: str) -> Any:  # list_with_version, watch: reads
        return getattr(self.inner, attr)


class GuardedObjects:
    """A :class:`~analyzer.ports.CustomObjects` (what the routers write) guarded the same way."""

    def __init__(self, inner: Any, allowed: Callable[[], bool]) -> None:
        self.inner, self.allowed = inner, allowed

    def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.inner.get(group, version, plural, namespace, name)
        return result

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.allowed():
            raise NotLeader(f"patch {plural}.{group} {namespace}/{name}: not the leader")
        result: dict[str, Any] = self.inner.json_patch(group, version, plural, namespace, name, ops)
        return result


# ---------------------------------------------------------------------- the runtime


def _key(obj: Mapping[str, Any]) -> Key | None:
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    return (str(namespace), str(name)) if name else None


@dataclass
class RuntimeOptions:
    namespace: str | None = None  # None: all namespaces
    workers: int = 4
    resync: float = 300.0
    drain_timeout: float = 30.0
    pass_timeout: float = PASS_TIMEOUT
    watch_seconds: int = WATCH_SECONDS
    backoff_max: float = 30.0


class Runtime:
    """Runs ``ctl`` over every rollout of ``options.namespace`` until ``stop`` is set."""

    def __init__(self, ctl: Controller, options: RuntimeOptions | None = None, *, elector: Elector | None = None,
                 metrics: ControllerMetrics | None = None) -> None:
        self.ctl = ctl
        self.options = options or RuntimeOptions()
        self.elector = elector
        self.metrics = metrics
        self.queue = WorkQueue(backoff_max=self.options.backoff_max)
        self.known: set[Key] = set()
        self.synced = asyncio.Event()  # the first list is in: /readyz
        self.leading = asyncio.Event()
        self.passes = 0
        self.failures = 0
        self.last_source_ok = time.monotonic()
        self._inflight: dict[Key, asyncio.Task[Any]] = {}
        self._written: dict[Key, str] = {}  # resourceVersion of our own last status write per key
        self._pending_rv: dict[Key, str] = {}  # newest resourceVersion seen by the watch during a pass
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        inner_on_status = ctl.on_status

        def on_status(obj: Mapping[str, Any]) -> None:
            key = _key(obj)
            if key is not None:
                self._written[key] = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            if self.metrics is not None:
                self.metrics.observe_rollout(obj)
            if inner_on_status is not None:
                inner_on_status(obj)

        ctl.on_status = on_status

    # ------------------------------------------------------------------ state for probes

    def is_leader(self) -> bool:
        return self.elector.is_leader() if self.elector is not None else True

    def ready(self) -> bool:
        return self.synced.is_set()

    def healthy(self) -> bool:
        return not self._stopping.is_set() or bool(self._inflight)

    # ------------------------------------------------------------------ feeding the queue

    def enqueue(self, key: Key, *, reason: str = "") -> None:
        self.queue.add(key)

    def _observe(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A watch event (on the loop thread)."""
        key = _key(obj)
        if key is None:
            return
        if kind == "DELETED":
            self.known.discard(key)
            if self.metrics is not None:
                self.metrics.forget(*key)
            self._written.pop(key, None)
            self.queue.cancel_timer(key)
            return
        self.known.add(key)
        if self.metrics is not None:
            self.metrics.observe_rollout(obj)
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if kind == "MODIFIED" and rv and self._written.get(key) == rv:
            return  # the echo of our own status write: the pass that wrote it already requeued
        if kind == "MODIFIED" and rv and key in self._inflight:
            # Seen during a pass: often the echo of the write that pass is making (the watch can
            # deliver it before the PUT's answer). Decided when the pass ends, see _worker.
            self._pending_rv[key] = rv
            return
        self.queue.add(key)

    def _relisted(self, items: list[dict[str, Any]]) -> None:
        keys = {k for k in (_key(o) for o in items) if k is not None}
        if self.metrics is not None:
            for obj in items:
                self.metrics.observe_rollout(obj)
        for gone in self.known - keys:
            self.queue.cancel_timer(gone)
            self._written.pop(gone, None)
        self.known = keys
        for key in sorted(keys):
            self.queue.add(key)
        self.last_source_ok = time.monotonic()
        self.synced.set()

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed under us: we are exiting
                loop.call_soon_threadsafe(fn, *args)

    def _watch_thread(self) -> None:
        """List, then watch from the list's resourceVersion; relist on 410; back off on errors."""
        store: Any = self.ctl.store
        ns = self.options.namespace
        rv = ""
        failures = 0
        while not self._stopping.is_set():
            try:
                if not rv:
                    items, rv = store.list_with_version(ns)
                    self._post(self._relisted, items)
                    log.info("listed rollouts", count=len(items), resource_version=rv)
                events: Iterator[tuple[str, dict[str, Any]]] = store.watch(ns, rv, timeout_seconds=self.options.watch_seconds)
                for kind, obj in events:
                    if self._stopping.is_set():
                        break
                    failures = 0
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    self._post(self._touch)
                    if kind == "BOOKMARK":
                        continue
                    if kind == "ERROR":
                        rv = ""
                        break
                    self._post(self._observe, kind, obj)
                failures = 0
            except Exception as exc:
                if getattr(exc, "code", None) == 410 or type(exc).__name__ == "WatchExpired":
                    log.info("watch expired, listing again", resource_version=rv)
                    rv = ""
                    continue
                failures += 1
                delay = min(self.options.backoff_max, 0.5 * 2 ** min(failures, 10)) * (0.8 + 0.4 * random.random())  # noqa: S311
                log.warning("watching rollouts failed; reconnecting", error=str(exc), retry_in=round(delay, 2),
                            resource_version=rv)
                if failures >= 5:
                    rv = ""  # a long outage: start again from a fresh list
                self._stopping.wait(delay)

    def _touch(self) -> None:
        self.last_source_ok = time.monotonic()

    async def _poll(self, stop: asyncio.Event) -> None:
        """Stores without a watch: list every ``resync`` seconds."""
        failures = 0
        while not stop.is_set():
            try:
                items = await asyncio.to_thread(self.ctl.store.list, self.options.namespace)
                self._relisted(items)
                failures = 0
                delay = self.options.resync
            except Exception as exc:
                failures += 1
                delay = min(self.options.backoff_max, 0.5 * 2 ** min(failures, 10))
                log.warning("listing rollouts failed", error=str(exc), retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _resync(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.resync)
            if stop.is_set():
                return
            for key in sorted(self.known):
                self.queue.add(key)

    # ------------------------------------------------------------------ workers

    async def _worker(self, index: int) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                if not self.is_leader():
                    continue  # followers drop work; the leader-to-be queues everything on election
                task = asyncio.ensure_future(self._pass(key))
                self._inflight[key] = task
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise  # the worker itself is being cancelled
                    log.info("pass cancelled", rollout=key_text(key))
            finally:
                self._inflight.pop(key, None)
                self.queue.done(key)
                pending = self._pending_rv.pop(key, None)
                if pending is not None and pending != self._written.get(key):
                    self.queue.add(key)  # someone else changed it during the pass

    async def _pass(self, key: Key) -> None:
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(rollout=key_text(key)):
            try:
                result = await asyncio.wait_for(reconcile(self.ctl, key[0], key[1]), self.options.pass_timeout)
            except asyncio.CancelledError:
                raise
            except NotLeader as exc:
                log.info("pass stopped: leadership lost", error=str(exc))
                return
            except Exception as exc:
                self.failures += 1
                delay = self.queue.add_rate_limited(key)
                log.warning("reconcile failed", error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 2))
                if self.metrics is not None:
                    self.metrics.reconcile_done(time.perf_counter() - started, error=True)
                return
            self.passes += 1
            self.queue.forget(key)
            if result.gone:
                self.known.discard(key)
                self._written.pop(key, None)
                self.queue.cancel_timer(key)
            elif result.requeue_after is not None:
                self.queue.add_after(key, result.requeue_after)
            log.debug("reconciled", phase=result.phase, requeue_after=result.requeue_after, wrote=result.wrote,
                      seconds=round(time.perf_counter() - started, 4))
            if self.metrics is not None:
                self.metrics.reconcile_done(time.perf_counter() - started)

    # ------------------------------------------------------------------ leadership

    def _started_leading(self) -> None:
        ident = self.elector.identity if self.elector is not None else ""
        log.info("started leading", identity=ident)
        self.leading.set()
        if self.metrics is not None:
            self.metrics.set_leader(True)
        for key in sorted(self.known):
            self.queue.add(key)

    def _stopped_leading(self) -> None:
        log.warning("stopped leading: dropping queued work and cancelling passes in flight")
        self.leading.clear()
        if self.metrics is not None:
            self.metrics.set_leader(False)
        self.queue.clear()
        for task in list(self._inflight.values()):
            task.cancel()

    # ------------------------------------------------------------------ main

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        elector_stop = asyncio.Event()
        background: list[asyncio.Task[Any]] = []
        watcher: threading.Thread | None = None
        if hasattr(self.ctl.store, "watch") and hasattr(self.ctl.store, "list_with_version"):
            watcher = threading.Thread(target=self._watch_thread, name="rollout-watch", daemon=True)
            watcher.start()
        else:
            background.append(asyncio.create_task(self._poll(stop)))
        background.append(asyncio.create_task(self._resync(stop)))
        elector_task: asyncio.Task[Any] | None = None
        if self.elector is not None:
            elector_task = asyncio.create_task(self.elector.run(self._started_leading, self._stopped_leading,
                                                                elector_stop))
        else:
            self.leading.set()
        workers = [asyncio.create_task(self._worker(i)) for i in range(max(1, self.options.workers))]
        log.info("controller running", namespace=self.options.namespace or "(all)", workers=len(workers),
                 leader_election=self.elector is not None)
        try:
            await stop.wait()
        finally:
            log.info("shutting down: finishing passes in flight", in_flight=len(self._inflight))
            self._stopping.set()
            self.queue.shutdown()  # idle workers return; busy ones return after their pass
            _, pending = await asyncio.wait(workers, timeout=self.options.drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            elector_stop.set()  # the elector releases the Lease on its way out
            if elector_task is not None:
                await asyncio.gather(elector_task, return_exceptions=True)
            log.info("stopped", passes=self.passes, failures=self.failures)
