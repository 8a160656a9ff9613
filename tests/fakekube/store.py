"""The etcd-like store: one global revision counter, objects, a bounded event history for
watches (older revisions are "compacted" and answer 410), and an unbounded audit log."""

from __future__ import annotations

import bisect
import copy
import random
import threading
from dataclasses import dataclass
from typing import Any

Key = tuple[tuple[str, str], str, str]  # (storage key (group, plural), namespace, name)


@dataclass
class StoreEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    obj: dict[str, Any]  # stored shape, with metadata.resourceVersion == rv
    prev: dict[str, Any] | None  # previous stored state (MODIFIED/DELETED)


class Store:
    def __init__(self, rv_start: int = 1000, rv_jitter: int = 4, history_limit: int = 10_000, seed: int | None = None):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = rv_start
        self._rng = random.Random(seed)
        self.rv_jitter = max(1, rv_jitter)
        self.objects: dict[Key, dict[str, Any]] = {}
        self.history: list[StoreEvent] = []
        self._history_rvs: list[int] = []
        self.history_limit = history_limit
        self.compacted_rv = rv_start  # events with rv <= compacted_rv are forgotten
        self.audit: list[StoreEvent] = []
        self.audit_enabled = True
        self.generation_counter = 0  # bumped to wake watchers (bookmarks, close)
        self.closing = False
        self.close_watches_epoch = 0
        self.bookmark_epoch = 0

    # ------------------------------------------------------------------ revisions

    def next_rv(self) -> int:
        """A new revision. The counter is global for every type and, like a busy cluster's etcd
        (node Leases, Events, other controllers), skips a few numbers between our writes."""
        self.rv += self._rng.randint(1, self.rv_jitter)
        return self.rv

    # ------------------------------------------------------------------ objects

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.objects.get(key)

    def items(self, storage_key: tuple[str, str], namespace: str | None = None) -> list[tuple[Key, dict[str, Any]]]:
        out = [(k, v) for k, v in self.objects.items() if k[0] == storage_key and (namespace is None or k[1] == namespace)]
        out.sort(key=lambda kv: (kv[0][1], kv[0][2]))
        return out

    def put(self, key: Key, obj: dict[str, Any], event_type: str) -> dict[str, Any]:
        """Write ``obj`` with a new revision and record the event. Returns the stored object."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        prev = self.objects.get(key)
        self.objects[key] = obj
        self._record(StoreEvent(rv, event_type, key, obj, prev))
        return obj

    def remove(self, key: Key) -> dict[str, Any]:
        prev = self.objects.pop(key)
        rv = self.next_rv()
        gone = copy.deepcopy(prev)
        gone["metadata"]["resourceVersion"] = str(rv)
        self._record(StoreEvent(rv, "DELETED", key, gone, prev))
        return gone

    def _record(self, ev: StoreEvent) -> None:
        self.history.append(ev)
        self._history_rvs.append(ev.rv)
        if self.audit_enabled:
            self.audit.append(ev)
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit
            self.compacted_rv = self.history[drop - 1].rv
            del self.history[:drop]
            del self._history_rvs[:drop]
        self.cond.notify_all()

    # ------------------------------------------------------------------ history

    def events_after(self, rv: int) -> list[StoreEvent] | None:
        """Events with revision > rv, or None when part of that range was compacted away."""
        if rv < self.compacted_rv:
            return None
        idx = bisect.bisect_right(self._history_rvs, rv)
        return self.history[idx:]

    def expire_history(self) -> None:
        """Forget every past event: a watch from any revision before now answers 410 Expired."""
        with self.lock:
            self.compacted_rv = self.rv
            self.history.clear()
            self._history_rvs.clear()

    def wake(self) -> None:
        with self.lock:
            self.cond.notify_all()
