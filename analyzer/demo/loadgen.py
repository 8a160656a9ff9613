"""A steady load generator: ``rps`` requests per second through one URL, from a few threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx


class LoadGenerator:
    def __init__(self, url: str, rps: float, *, workers: int = 4, headers: dict[str, str] | None = None) -> None:
        self.url, self.rps, self.workers = url, rps, workers
        self.headers = headers or {}
        self.codes: Counter[int] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _run(self, offset: float) -> None:
        interval = self.workers / self.rps
        next_at = time.monotonic() + offset
        with httpx.Client(headers=self.headers, timeout=5.0) as client:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                next_at = max(next_at + interval, time.monotonic() - interval)
                try:
                    code = client.get(self.url).status_code
                except httpx.HTTPError:
                    code = 0
                with self._lock:
                    self.codes[code] += 1

    def start(self) -> LoadGenerator:
        for i in range(self.workers):
            t = threading.Thread(target=self._run, args=(i / self.rps,), daemon=True, name=f"load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
