"""A fake inference service's metrics: live (an exporter Prometheus can scrape) and historical.

Both speak the same metric names and labels, so one AnalysisTemplate works on either:

* ``inference_requests_total{app, version}`` (counter)
* ``inference_success_total{app, version}`` (counter)
* ``inference_request_duration_seconds{app, version}`` (histogram, buckets 0.025..10 s)

Latency is log-normal around ``Profile.latency`` (the median), which gives the long right tail
real model servers have without making p99 absurd.
"""

from __future__ import annotations

import math
import random
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import accumulate
from types import TracebackType

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

LATENCY_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_SIGMA = 0.35


@dataclass(frozen=True)
class Profile:
    """How one version behaves: requests per second, error probability, median latency (s)."""

    rps: float = 50.0
    error_rate: float = 0.0
    latency: float = 0.05

    def __post_init__(self) -> None:
        if self.rps < 0 or not 0.0 <= self.error_rate <= 1.0 or self.latency < 0:
            raise ValueError(f"invalid profile {self}: need rps >= 0, 0 <= error_rate <= 1, latency >= 0")


def _latency(rnd: random.Random, median: float) -> float:
    return rnd.lognormvariate(math.log(median), LATENCY_SIGMA) if median > 0 else 0.0


class Workload:
    """Serves ``/metrics`` on ``host:port`` (port 0 picks a free one) and simulates traffic.

    ``set_profile`` changes a version's behaviour while running (e.g. to make a canary go bad).
    """

    def __init__(
        self,
        port: int = 0,
        versions: Mapping[str, Profile] | None = None,
        *,
        app: str = "inference",
        host: str = "127.0.0.1",
        seed: int | None = None,
        tick: float = 0.05,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._tick = tick
        self._rnd = random.Random(seed)
        self._lock = threading.Lock()
        self._profiles: dict[str, Profile] = {}
        self._owed: dict[str, float] = {}
        self.registry = CollectorRegistry()
        labels = ["app", "version"]
        self._requests = Counter(
            "inference_requests", "Inference requests received.", labels, registry=self.registry
        )
        self._success = Counter(
            "inference_success", "Inference requests answered successfully.", labels, registry=self.registry
        )
        self._duration = Histogram(
            "inference_request_duration_seconds",
            "Inference request latency.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for version, profile in (versions or {"v1": Profile()}).items():
            self.set_profile(version, profile)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: object | None = None
        self.port = 0

    @property
    def target(self) -> str:
        """``host:port`` as a Prometheus scrape target."""
        return f"{self.host}:{self.port}"

    @property
    def profiles(self) -> dict[str, Profile]:
        with self._lock:
            return dict(self._profiles)

    def set_profile(self, version: str, profile: Profile) -> None:
        with self._lock:
            self._profiles[version] = profile
            self._owed.setdefault(version, 0.0)
            # Creating the children exports zeros at once, so "no traffic yet" is 0, not absent.
            self._requests.labels(self.app, version)
            self._success.labels(self.app, version)
            self._duration.labels(self.app, version)

    def start(self) -> Workload:
        if self._thread is not None:
            return self
        server, _ = start_http_server(self._requested_port, addr=self.host, registry=self.registry)
        self._server = server
        self.port = int(server.server_address[1])
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"workload-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            self.simulate(now - last)
            last = now

    def simulate(self, seconds: float) -> None:
        """Adds ``seconds`` worth of traffic for every version (the background thread calls this)."""
        with self._lock:
            for version, profile in self._profiles.items():
                owed = self._owed[version] + profile.rps * seconds
                count = int(owed)
                self._owed[version] = owed - count
                for _ in range(count):
                    self._requests.labels(self.app, version).inc()
                    if self._rnd.random() >= profile.error_rate:
                        self._success.labels(self.app, version).inc()
                    self._duration.labels(self.app, version).observe(_latency(self._rnd, profile.latency))


def _le(bound: float) -> str:
    # Same spelling as prometheus_client's exposition ("0.025", "10.0", "+Inf"), so that label
    # matchers like le="10.0" select backfilled and scraped buckets alike (2.x does not normalise).
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def backfill_openmetrics(
    profiles: Mapping[str, Profile],
    *,
    start: int,
    duration: int,
    step: int = 15,
    app: str = "inference",
    seed: int = 1234,
) -> str:
    """Deterministic OpenMetrics history for ``promtool tsdb create-blocks-from openmetrics``.

    Samples at ``start, start+step, ...`` (all < ``start + duration``), timestamps in seconds.
    Counters are 0 at ``start``, so a rate over the window is exactly the profile's rps (up to
    rounding of fractional requests). Same arguments ⇒ byte-identical text.
    """
    if step <= 0 or duration <= 0:
        raise ValueError("step and duration must be positive")
    times = [start + i * step for i in range(math.ceil(duration / step))]
    requests: list[str] = []
    success: list[str] = []
    histogram: list[str] = []
    for version, profile in profiles.items():
        base = f'app="{_label_value(app)}",version="{_label_value(version)}"'
        series = _simulate_history(profile, len(times), step, random.Random(f"{seed}:{version}"))
        requests += [
            f"inference_requests_total{{{base}}} {n} {ts}"
            for ts, n in zip(times, series.requests, strict=True)
        ]
        success += [
            f"inference_success_total{{{base}}} {n} {ts}" for ts, n in zip(times, series.success, strict=True)
        ]
        for b, le in enumerate((*LATENCY_BUCKETS, math.inf)):
            label = f'{base},le="{_le(le)}"'
            histogram += [
                f"inference_request_duration_seconds_bucket{{{label}}} {row[b]} {ts}"
                for ts, row in zip(times, series.buckets, strict=True)
            ]
        histogram += [
            f"inference_request_duration_seconds_count{{{base}}} {n} {ts}"
            for ts, n in zip(times, series.requests, strict=True)
        ]
        histogram += [
            f"inference_request_duration_seconds_sum{{{base}}} {s:.6f} {ts}"
            for ts, s in zip(times, series.sums, strict=True)
        ]
    lines = [
        "# HELP inference_requests Inference requests received.",
        "# TYPE inference_requests counter",
        *requests,
        "# HELP inference_success Inference requests answered successfully.",
        "# TYPE inference_success counter",
        *success,
        "# HELP inference_request_duration_seconds Inference request latency.",
        "# TYPE inference_request_duration_seconds histogram",
        *histogram,
        "# EOF",  # promtool rejects anything after this line, even a blank one
    ]
    return "\n".join(lines) + "\n"


@dataclass
class _History:
    requests: list[int]
    success: list[int]
    buckets: list[list[int]]
    sums: list[float]


def _simulate_history(profile: Profile, samples: int, step: int, rnd: random.Random) -> _History:
    history = _History([], [], [], [])
    total = ok = 0
    per_bucket = [0] * (len(LATENCY_BUCKETS) + 1)  # last slot: above the largest bound
    latency_sum = owed = 0.0
    for i in range(samples):
        if i > 0:
            owed += profile.rps * step
            count = int(owed)
            owed -= count
            for _ in range(count):
                total += 1
                ok += rnd.random() >= profile.error_rate
                latency = _latency(rnd, profile.latency)
                latency_sum += latency
                per_bucket[bisect_left(LATENCY_BUCKETS, latency)] += 1  # `le` bounds are inclusive
        history.requests.append(total)
        history.success.append(ok)
        history.buckets.append(list(accumulate(per_bucket)))
        history.sums.append(latency_sum)
    return history
