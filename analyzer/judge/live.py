"""Live data from Prometheus: counters and histogram buckets per arm, cumulative since the start.

For every selector and arm we fetch the raw samples of each series (an instant query of a range
selector, reaching 10 minutes before the start so that each series' value at the start is known)
and compute its exact increase since the start in Python, counter resets included (a drop means
the counter restarted from 0), *before* summing series into the arm: a reset in one pod must not
look like a drop of the whole arm. A series with no sample at or before the start was born after
it and counts from 0. This is the method of ../shared/metrics-catalog.md §1.1; plain
``increase()`` extrapolates, and misses the first value of series born inside the window.

Label values are always written as PromQL string literals (``lit``) or as escaped regex
alternations (``rx_any``), never pasted raw.
"""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import numpy as np

from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.stats import Arm, MetricType, Steps
from analyzer.judge.config import JudgeConfig, LiveMetric

LOOKBACK = 600  # seconds before the start searched for each series' starting value
TIMEOUT = 30.0


class LiveError(Exception):
    """Prometheus could not be queried, or answered something unusable."""


def lit(value: str) -> str:
    """PromQL double-quoted string literal, quotes included (Go escapes; never surrogate pairs)."""
    return json.dumps(value, ensure_ascii=False)


def rx_any(values: Sequence[str]) -> str:
    """Operand for ``=~`` matching exactly one of ``values`` (Prometheus anchors regexes)."""
    return lit("|".join(re.escape(v) for v in values))


def matchers(labels: Mapping[str, str | tuple[str, ...]]) -> str:
    parts = []
    for name, value in labels.items():
        parts.append(f"{name}={lit(value)}" if isinstance(value, str) else f"{name}=~{rx_any(value)}")
    return ", ".join(parts)


def with_arm(selector: str, labels: Mapping[str, str | tuple[str, ...]]) -> str:
    """``name{a="b"}`` + arm labels -> ``name{a="b", arm="x"}``."""
    extra = matchers(labels)
    if not extra:
        return selector
    if selector.endswith("}"):
        head, _, inner = selector[:-1].partition("{")
        inner = inner.strip().rstrip(",")
        return f"{head}{{{inner + ', ' if inner else ''}{extra}}}"
    return f"{selector}{{{extra}}}"


def parse_time(text: str, now: float | None, what: str) -> float:
    """Unix seconds, RFC 3339, or a duration meaning that long before ``now`` (default: the clock)."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return calendar.timegm(moment.utctimetuple()) + moment.microsecond / 1e6
    except ValueError:
        pass
    try:
        ago = parse_go_duration_seconds(value)
    except ValueError:
        raise ValueError(f"{what}: expected unix seconds, an RFC 3339 time or a duration ago "
                         f"(e.g. 30m), got {text!r}") from None
    return (time.time() if now is None else now) - ago


def cumulative_at(samples: Sequence[tuple[float, float]], start: float, boundaries: np.ndarray) -> np.ndarray:
    """One counter series: its increase since ``start`` at each boundary, resets handled."""
    points = [(ts, v) for ts, v in samples if math.isfinite(v)]
    ts = np.asarray([p[0] for p in points], dtype=np.float64)
    vs = np.asarray([p[1] for p in points], dtype=np.float64)
    before = ts <= start
    base = float(vs[before][-1]) if before.any() else 0.0  # born after the start: counts from 0
    after_ts, after_vs = ts[~before], vs[~before]
    if len(after_ts) == 0:
        return np.zeros(len(boundaries))
    previous = np.r_[base, after_vs[:-1]]
    step = np.where(after_vs >= previous, after_vs - previous, after_vs)  # a drop is a restart from 0
    cumulative = np.cumsum(step)
    index = np.searchsorted(after_ts, boundaries, side="right") - 1
    return np.where(index >= 0, cumulative[np.maximum(index, 0)], 0.0)


class _Client:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=TIMEOUT, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def call(self, endpoint: str, params: dict[str, str]) -> Any:
        try:
            response = self.http.post(self.url + endpoint, data=params)
        except httpx.HTTPError as exc:
            raise LiveError(f"cannot query prometheus at {self.url}: {type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise LiveError(f"prometheus returned HTTP {response.status_code} with a non-JSON body") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            kind = body.get("errorType") if isinstance(body, dict) else None
            error = body.get("error") if isinstance(body, dict) else None
            raise LiveError(f"prometheus error for {params.get('query')!r}: {kind or 'error'}: {error or body!r}")
        return body.get("data")

    def samples(self, selector: str, start: float, now: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        window = int(math.ceil(now - start)) + LOOKBACK
        data = self.call("/api/v1/query", {"query": f"{selector}[{window}s]", "time": repr(now)})
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise LiveError(f"{selector!r}: expected a range of raw samples (a series selector)")
        out = []
        for series in data.get("result") or []:
            values = [(float(ts), float(v)) for ts, v in series.get("values", [])]
            out.append((dict(series.get("metric") or {}), values))
        return out

    def readings(self, query: str, times: np.ndarray) -> np.ndarray:
        step = float(times[1] - times[0]) if len(times) > 1 else 60.0
        data = self.call("/api/v1/query_range", {"query": query, "start": repr(float(times[0])),
                                                  "end": repr(float(times[-1])), "step": repr(step)})
        result = data.get("result") if isinstance(data, dict) else None
        out = np.full(len(times), np.nan)
        if not result:
            return out
        if len(result) > 1:
            raise LiveError(f"{query!r} returned {len(result)} series; a series metric needs one (aggregate it)")
        for ts, v in result[0].get("values", []):
            i = int(round((float(ts) - float(times[0])) / step))
            if 0 <= i < len(out):
                out[i] = float(v)
        return out


def _counter(client: _Client, selector: str, start: float, now: float, boundaries: np.ndarray) -> np.ndarray:
    total = np.zeros(len(boundaries))
    for _, samples in client.samples(selector, start, now):
        total += cumulative_at(samples, start, boundaries)
    return total


def _histogram(client: _Client, selector: str, start: float, now: float, boundaries: np.ndarray,
               unit: float) -> tuple[np.ndarray, np.ndarray] | None:
    by_le: dict[float, np.ndarray] = {}
    for labels, samples in client.samples(selector, start, now):
        try:
            bound = float(labels.get("le", "nan"))  # never match le as a string: spellings differ
        except ValueError:
            continue
        if math.isnan(bound):
            continue
        by_le[bound] = by_le.get(bound, np.zeros(len(boundaries))) + cumulative_at(samples, start, boundaries)
    if len(by_le) < 2:
        return None
    bounds = np.asarray(sorted(by_le))
    return bounds * unit, np.stack([by_le[b] for b in bounds], axis=1)


def _arm_steps(requests: np.ndarray, errors: np.ndarray, buckets: np.ndarray | None) -> Arm:
    from analyzer.core.stats.steps import arm_increments

    # Each series was reset-corrected before summing, so the sums only grow; arm_increments
    # still guards against a series that vanished (its cumulative leaves the sum).
    req, err, per_bucket = arm_increments(requests, errors, buckets)
    return Arm(req, err, per_bucket)


def fetch_steps(config: JudgeConfig, url: str, start: float, now: float | None = None) -> tuple[Steps, float]:
    """Steps from the start to ``now`` (default: the clock) at the config's step; also returns now."""
    now = time.time() if now is None else now
    if now <= start:
        return Steps(np.zeros(0), Arm(np.zeros(0), np.zeros(0)), Arm(np.zeros(0), np.zeros(0))), now
    count = int(math.floor((now - start) / config.step))
    boundaries = start + config.step * np.arange(1, count + 1)
    if len(boundaries) == 0 or boundaries[-1] < now:
        boundaries = np.r_[boundaries, now]
    t = boundaries - start
    client = _Client(url)
    try:
        per_metric: dict[str, Steps] = {}
        values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for metric in config.spec.metrics:
            live: LiveMetric = config.live[metric.name]
            if metric.type is MetricType.SERIES and live.canary_query and live.baseline_query:
                values[metric.name] = (client.readings(live.canary_query, boundaries),
                                       client.readings(live.baseline_query, boundaries))
                continue
            arms: dict[str, Arm] = {}
            bounds = None
            for arm in ("canary", "baseline"):
                labels = config.arms.get(arm, {})
                if metric.type is MetricType.ERROR_RATE and live.errors and (live.requests or live.successes):
                    errors = _counter(client, with_arm(live.errors, labels), start, now, boundaries)
                    if live.requests:
                        requests = _counter(client, with_arm(live.requests, labels), start, now, boundaries)
                    else:
                        assert live.successes is not None
                        requests = errors + _counter(client, with_arm(live.successes, labels), start, now,
                                                     boundaries)
                    arms[arm] = _arm_steps(requests, errors, None)
                elif metric.type is MetricType.LATENCY and live.buckets:
                    hist = _histogram(client, with_arm(live.buckets, labels), start, now, boundaries, live.unit)
                    if hist is None:
                        arms[arm] = Arm(np.zeros(len(t)), np.zeros(len(t)))
                        continue
                    arm_bounds, cumulative = hist
                    bounds = arm_bounds if bounds is None else np.intersect1d(bounds, arm_bounds)
                    arms[arm] = _arm_steps(cumulative[:, -1], np.zeros(len(t)), cumulative)
            if arms:
                per_metric[metric.name] = _align(t, arms, bounds)
    finally:
        client.close()
    return _shared(t, per_metric, values, config), now


def _align(t: np.ndarray, arms: dict[str, Arm], bounds: np.ndarray | None) -> Steps:
    """Latency arms may expose different bucket sets: keep the common bounds only."""
    c, b = arms["canary"], arms["baseline"]
    if bounds is None or c.buckets is None or b.buckets is None:
        return Steps(t, Arm(c.requests, c.errors), Arm(b.requests, b.errors))
    return Steps(t, c, b, bounds)


def _shared(t: np.ndarray, per_metric: dict[str, Steps], values: dict[str, tuple[np.ndarray, np.ndarray]],
            config: JudgeConfig) -> Steps:
    # The arms every metric falls back on (and the "did the canary get traffic" check) come from
    # the first error-rate metric, else the first latency metric.
    order = [m.name for m in config.spec.metrics if m.type is MetricType.ERROR_RATE and m.name in per_metric]
    order += [m.name for m in config.spec.metrics if m.type is MetricType.LATENCY and m.name in per_metric]
    if order:
        base = per_metric[order[0]]
        return Steps(t, base.canary, base.baseline, base.bounds, values, per_metric)
    zeros = np.zeros(len(t))
    return Steps(t, Arm(zeros, zeros), Arm(zeros, zeros), None, values, per_metric)
