"""The daemon's work queue: rollout keys (``namespace/name``) waiting for a reconcile pass.

client-go's workqueue semantics, on asyncio:

* **dedup** - a key is queued at most once, however many watch events name it;
* **one worker per key** - a key handed out by :meth:`get` is *processing* until :meth:`done`.
  Adding it meanwhile marks it *dirty*, and :meth:`done` queues it again, so a change seen during
  a pass gets its own pass after it, never a second pass beside it (two passes of one rollout at
  once would race for its status and its weights);
* **timers** - :meth:`add_after` queues a key later (requeue from ``PassResult.requeue_after``);
  only the earliest pending timer of a key is kept;
* **backoff** - :meth:`add_rate_limited` queues a failing key after ``base * 2^failures``
  (capped), :meth:`forget` resets it after a good pass.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque

Key = tuple[str, str]  # (namespace, name)


def key_text(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


class ShutDown(Exception):
    """The queue was shut down: the worker should return."""


class WorkQueue:
    def __init__(self, *, backoff_base: float = 0.5, backoff_max: float = 60.0) -> None:
        self._queue: deque[Key] = deque()
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Key, int] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._shutdown = False
        self.backoff_base, self.backoff_max = backoff_base, backoff_max

    # ------------------------------------------------------------------ adding

    def add(self, key: Key) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._wake()

    def add_after(self, key: Key, seconds: float) -> None:
        """Queue ``key`` in ``seconds`` (at once when <= 0). An earlier timer of the key wins."""
        if self._shutdown:
            return
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + seconds
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def add_rate_limited(self, key: Key) -> float:
        """Queue a key whose pass failed, after an exponential backoff with jitter; returns it."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay: float = min(self.backoff_max, self.backoff_base * (2.0 ** n)) * (0.8 + 0.4 * random.random())  # noqa: S311
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        self._failures.pop(key, None)

    def cancel_timer(self, key: Key) -> None:
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _wake(self, everyone: bool = False) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    # ------------------------------------------------------------------ taking

    async def get(self) -> Key:
        """The next key; it is *processing* until :meth:`done`. Raises :class:`ShutDown`."""
        while True:
            if self._shutdown:
                raise ShutDown
            if self._queue:
                key = self._queue.popleft()
                self._queued.discard(key)
                self._processing.add(key)
                if self._queue:  # more work: make sure another waiting worker wakes up
                    self._wake()
                return key
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and self._queue:  # woken but cancelled: pass the wake-up on
                    self._wake()
                raise

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    # ------------------------------------------------------------------ state

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[Key]:
        return frozenset(self._processing)

    @property
    def timers(self) -> int:
        return len(self._timers)

    def clear(self) -> None:
        """Drop queued keys and timers (leadership lost: the next leader starts from the store)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._queue.clear()
        self._queued.clear()
        self._dirty.clear()
        self._failures.clear()

    def shutdown(self) -> None:
        self._shutdown = True
        self.clear()
        self._wake(everyone=True)
