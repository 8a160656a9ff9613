"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Several daemon replicas run; only the holder of the Lease acts. The rules (client-go
``tools/leaderelection``, kube-api-semantics.md §7):

* A candidate takes the Lease when it does not exist (create; AlreadyExists = someone else won),
  when its holder is empty (released), when it is ours, or when it has not changed for
  ``leaseDurationSeconds`` **as measured on our own clock since we first saw that version of the
  record**. The ``renewTime`` another machine wrote is never compared with our clock, so clock
  skew between nodes cannot make two leaders.
* Every write carries the resourceVersion we read (optimistic concurrency): of two candidates that
  both saw an expired Lease, one PUT wins and the other gets 409 Conflict and stays a follower.
* Taking over from another holder sets ``acquireTime`` and bumps ``leaseTransitions``; renewing
  keeps both.
* The leader renews every ``retry_period``. :meth:`LeaderElector.is_leader` turns False as soon as
  ``renew_deadline`` has passed since the start of the last successful renewal, whether or not the
  failing request has returned, so the daemon stops acting before any follower may take over
  (``lease_duration`` > ``renew_deadline``, and a follower counts from when it saw that renewal,
  which is after the request started).
* :meth:`LeaderElector.release` on shutdown writes an empty holder, so a follower takes over at
  its next retry instead of waiting a full lease duration.

The kubernetes client is synchronous; :meth:`LeaderElector.run` calls it in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from analyzer.kube.errors import describe

log = structlog.get_logger("analyzer.lease")

Callback = Callable[[], Awaitable[None] | None]


def default_identity() -> str:
    """``<hostname>_<random>``: the pod name in a cluster (hostname), unique per process, so a
    restarted replica is a new candidate (as client-go's controllers do)."""
    import socket
    import uuid

    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(t: datetime) -> datetime:
    """``t`` in UTC with a non-zero microsecond.

    The client serialises datetimes with ``isoformat()``, which drops the fraction when the
    microsecond is 0; the API server demands exactly six fractional digits (MicroTime) and would
    answer 400. One microsecond later is harmless."""
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t if t.microsecond else t.replace(microsecond=1)


@dataclass(frozen=True)
class LeaderRecord:
    """What a Lease says about leadership (``spec`` of the Lease)."""

    holder: str
    lease_duration: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int


def _record(lease: Any) -> LeaderRecord:
    spec = lease.spec
    if spec is None:
        return LeaderRecord("", 0, None, None, 0)
    return LeaderRecord(holder=spec.holder_identity or "", lease_duration=int(spec.lease_duration_seconds or 0),
                        acquire_time=spec.acquire_time, renew_time=spec.renew_time,
                        transitions=int(spec.lease_transitions or 0))


class LeaderElector:
    """One candidate for the Lease ``namespace/name``.

    ``clock`` is a monotonic seconds source (deadlines and lease validity); ``wall`` gives the
    times written into the Lease. Both are parameters so tests can drive them."""

    def __init__(self, api_client: Any, namespace: str, name: str, identity: str, *,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 request_timeout: float | None = None) -> None:
        if not identity:
            raise ValueError("leader election: identity must not be empty")
        if not lease_duration > renew_deadline:
            raise ValueError(f"leader election: lease_duration ({lease_duration}) must be greater than "
                             f"renew_deadline ({renew_deadline})")
        if not renew_deadline > 1.2 * retry_period:
            raise ValueError(f"leader election: renew_deadline ({renew_deadline}) must be greater than "
                             f"1.2 x retry_period ({retry_period})")
        if retry_period <= 0:
            raise ValueError("leader election: retry_period must be positive")
        from kubernetes import client as k8s

        self._k8s = k8s
        self._api = k8s.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self._clock, self._wall = clock, wall
        # One request must end well inside the renew deadline, so a hung API server is retried.
        self._timeout = request_timeout if request_timeout is not None else max(0.5, renew_deadline / 3)
        self._lock = threading.Lock()
        self._lease: Any = None  # last Lease read or written (its resourceVersion guards the next write)
        self._observed: LeaderRecord | None = None
        self._observed_at = 0.0  # our clock when self._observed was first seen
        self._leader = False
        self._renewed_at = 0.0  # our clock at the start of the last successful acquire/renew
        self._epoch = 0  # bumped on step-down: a late answer of an older attempt is not leadership

    # ------------------------------------------------------------------ state

    def is_leader(self) -> bool:
        """True while we hold the Lease and the last successful renewal started less than
        ``renew_deadline`` ago. Cheap; poll it before every action."""
        with self._lock:
            return self._leader and self._clock() - self._renewed_at < self.renew_deadline

    @property
    def holder(self) -> str:
        """The holder as last observed ("" when unknown or released)."""
        with self._lock:
            return self._observed.holder if self._observed else ""

    @property
    def transitions(self) -> int:
        with self._lock:
            return self._observed.transitions if self._observed else 0

    def _step_down(self) -> None:
        with self._lock:
            self._leader = False
            self._epoch += 1

    # ------------------------------------------------------------------ one attempt (client-go tryAcquireOrRenew)

    def try_acquire_or_renew(self) -> bool:
        """One synchronous attempt to acquire or renew. True when we hold the Lease afterwards.
        API failures are logged and count as False; they never raise."""
        with self._lock:
            epoch, start = self._epoch, self._clock()
        try:
            return self._attempt(epoch, start)
        except Exception as exc:  # any API or network failure is a failed attempt, never a crash
            log.warning("lease attempt failed", lease=f"{self.namespace}/{self.name}", identity=self.identity,
                        error=_describe(exc))
            return False

    def _spec(self, acquire: datetime, renew: datetime, transitions: int, holder: str | None = None,
              duration: int | None = None) -> Any:
        return self._k8s.V1LeaseSpec(holder_identity=self.identity if holder is None else holder,
                                     lease_duration_seconds=duration or max(1, math.ceil(self.lease_duration)),
                                     acquire_time=micro_time(acquire), renew_time=micro_time(renew),
                                     lease_transitions=transitions)

    def _commit(self, epoch: int, start: float, lease: Any) -> bool:
        with self._lock:
            if epoch != self._epoch:
                return False  # we stepped down while this request was in flight
            self._lease = lease
            self._observed, self._observed_at = _record(lease), start
            was = self._leader
            self._leader, self._renewed_at = True, start
        if not was:
            log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity,
                     transitions=int(lease.spec.lease_transitions or 0))
        return True

    def _attempt(self, epoch: int, start: float) -> bool:
        ApiException = self._k8s.ApiException
        now = self._wall()
        # Fast path: we lead and have the Lease we last wrote; renew it with its resourceVersion.
        with self._lock:
            cached = self._lease if self._leader and self._observed and self._observed.holder == self.identity else None
        if cached is not None:
            rec = _record(cached)
            lease = self._k8s.V1Lease(metadata=self._meta(cached.metadata.resource_version),
                                      spec=self._spec(rec.acquire_time or now, now, rec.transitions))
            try:
                out = self._api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=self._timeout)
                return self._commit(epoch, start, out)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # someone wrote the Lease since: read it and judge below

        try:
            current: Any = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease = self._k8s.V1Lease(metadata=self._meta(None), spec=self._spec(now, now, 0))
            try:
                out = self._api.create_namespaced_lease(self.namespace, lease, _request_timeout=self._timeout)
            except ApiException as exc2:
                if exc2.status == 409:  # AlreadyExists: another candidate created it first
                    self._lost("created by another candidate first")
                    return False
                raise
            return self._commit(epoch, start, out)

        rec = _record(current)
        with self._lock:
            if rec != self._observed:
                self._observed, self._observed_at = rec, start
            self._lease = current
            observed_at = self._observed_at
        ours = rec.holder == self.identity
        if rec.holder and not ours and observed_at + rec.lease_duration > start:
            self._lost(f"held by {rec.holder}")
            return False
        if ours:
            spec = self._spec(rec.acquire_time or now, now, rec.transitions)
        else:  # take over: a released, expired or never-held Lease
            spec = self._spec(now, now, rec.transitions + 1)
        lease = self._k8s.V1Lease(metadata=self._meta(current.metadata.resource_version), spec=spec)
        try:
            out = self._api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 409:  # lost the race to another candidate's write
                self._lost("another candidate wrote the Lease first (409 Conflict)")
                return False
            raise
        return self._commit(epoch, start, out)

    def _lost(self, why: str) -> None:
        with self._lock:
            was = self._leader
        if was:
            log.warning("lost leadership", lease=f"{self.namespace}/{self.name}", identity=self.identity, reason=why)
            self._step_down()

    def _meta(self, resource_version: str | None) -> Any:
        return self._k8s.V1ObjectMeta(name=self.name, namespace=self.namespace, resource_version=resource_version)

    # ------------------------------------------------------------------ release (client-go tryRelease)

    def release(self) -> bool:
        """Stop leading at once and hand the Lease over: holder "", a 1 s duration, times now.
        True when the Lease no longer names us (or we never held it). Never raises."""
        with self._lock:
            held = self._leader or (self._observed is not None and self._observed.holder == self.identity)
            cached: Any = self._lease
        self._step_down()
        if not held or cached is None:
            return True
        for _ in range(3):
            rec = _record(cached)
            if rec.holder != self.identity:
                return True
            now = self._wall()
            lease = self._k8s.V1Lease(metadata=self._meta(cached.metadata.resource_version),
                                      spec=self._spec(now, now, rec.transitions, holder="", duration=1))
            try:
                out = self._api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=self._timeout)
            except self._k8s.ApiException as exc:
                if exc.status != 409:
                    log.warning("lease release failed", lease=f"{self.namespace}/{self.name}", error=_describe(exc))
                    return False
                try:
                    cached = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self._timeout)
                except Exception as exc2:
                    log.warning("lease release failed", lease=f"{self.namespace}/{self.name}", error=_describe(exc2))
                    return False
                continue
            except Exception as exc:
                log.warning("lease release failed", lease=f"{self.namespace}/{self.name}", error=_describe(exc))
                return False
            with self._lock:
                self._lease, self._observed = out, _record(out)
            log.info("released leadership", lease=f"{self.namespace}/{self.name}", identity=self.identity)
            return True
        return False

    # ------------------------------------------------------------------ the loop

    async def run(self, on_started_leading: Callback | None = None, on_stopped_leading: Callback | None = None,
                  stop: asyncio.Event | None = None, *, release_on_stop: bool = True) -> None:
        """Campaign, lead, and campaign again after losing, until ``stop`` is set (or the task is
        cancelled). The callbacks may be plain functions or coroutine functions; they should be
        quick (start or stop the work elsewhere, which also polls :meth:`is_leader`).
        ``on_stopped_leading`` runs as soon as a renewal deadline is missed or another holder is
        seen. On the way out a leader calls ``on_stopped_leading`` and, with ``release_on_stop``,
        releases the Lease so another replica takes over at once."""
        stop = stop or asyncio.Event()
        leading = False
        try:
            while not stop.is_set():
                if not await self._acquire(stop):
                    break
                leading = True
                await _call(on_started_leading)
                await self._renew_until_lost(stop)
                if stop.is_set():
                    break
                leading = False
                await _call(on_stopped_leading)
        finally:
            self._step_down()
            if release_on_stop:
                await asyncio.shield(asyncio.to_thread(self.release))
            if leading:
                await _call(on_stopped_leading)

    async def _acquire(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            if await asyncio.to_thread(self.try_acquire_or_renew):
                return True
            await _wait(stop, self.retry_period * (1.0 + 0.2 * random.random()))  # noqa: S311 - jitter, not crypto
        return False

    async def _renew_until_lost(self, stop: asyncio.Event) -> None:
        """Renew every retry_period; return when ``stop`` is set, or step down and return when no
        renewal succeeded within renew_deadline or another holder was seen."""
        while not stop.is_set():
            await _wait(stop, self.retry_period)
            if stop.is_set():
                return
            renewed = await self._renew_within_deadline(stop)
            if stop.is_set():
                return
            if not renewed:
                log.warning("stepping down: the lease was not renewed in time or was taken",
                            lease=f"{self.namespace}/{self.name}", identity=self.identity,
                            renew_deadline=self.renew_deadline)
                self._step_down()
                return

    async def _renew_within_deadline(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            with self._lock:
                leader, deadline = self._leader, self._renewed_at + self.renew_deadline
            remaining = deadline - self._clock()
            if not leader or remaining <= 0:
                return False
            attempt = asyncio.ensure_future(asyncio.to_thread(self.try_acquire_or_renew))
            done, _ = await asyncio.wait({attempt}, timeout=remaining)
            if not done:
                return False  # the request hangs past the deadline; its late answer is discarded
            if attempt.result():
                return True
            await _wait(stop, min(self.retry_period, max(0.0, deadline - self._clock())))
        return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        pass


async def _call(cb: Callback | None) -> None:
    if cb is None:
        return
    out = cb()
    if inspect.isawaitable(out):
        await out


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        return describe(exc)
    return f"{type(exc).__name__}: {exc}"
