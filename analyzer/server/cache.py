"""A short-lived result cache with single flight.

Argo measures every ``interval`` and may run many AnalysisRuns against the same rollout; every
replica of a measurement inside the TTL gets the same answer without touching Prometheus, and
concurrent identical requests wait for the one computation in flight instead of each starting one
(a thundering herd on a cold key would otherwise hit Prometheus N times).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    def __init__(self, ttl: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._flights: dict[Hashable, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(value, hit). Failures are not cached: the next call tries again."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1], True
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            future.set_result(value)
            if self.ttl > 0:
                self._store(key, value)
            return value, False
        finally:
            del self._flights[key]

    def _store(self, key: Hashable, value: T) -> None:
        now = self._clock()
        self._entries[key] = (now + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        # Drop expired entries from the old end so the map does not hold dead results.
        while self._entries:
            oldest_key, (expires, _) = next(iter(self._entries.items()))
            if expires > now:
                break
            del self._entries[oldest_key]
