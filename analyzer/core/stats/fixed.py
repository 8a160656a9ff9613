"""Fixed-horizon pieces: per-interval points of each arm, and their Kayenta-style classification."""

from __future__ import annotations

import numpy as np

from analyzer.core.stats.kayenta import Classification, classify
from analyzer.core.stats.latency import histogram_quantile
from analyzer.core.stats.model import MetricSpec, MetricType
from analyzer.core.stats.steps import Array, Steps


def _blocks(t: Array, interval: float) -> list[np.ndarray]:
    ids = np.maximum(np.ceil(t / interval) - 1, 0).astype(np.int64)
    return [np.flatnonzero(ids == i) for i in np.unique(ids)]


def interval_points(steps: Steps, metric: MetricSpec, interval: float) -> tuple[Array, Array]:
    """One point per interval and arm: error rate, p99 latency (s) or the mean series reading.

    An interval where an arm had no requests (or no reading) gives NaN, which Kayenta removes.
    Intervals that start inside the metric's warm-up are left out.
    """
    blocks = [b for b in _blocks(steps.t, interval) if steps.start[b[0]] >= metric.warmup]
    out: list[list[float]] = [[], []]
    for side, arm in enumerate((steps.canary, steps.baseline)):
        for b in blocks:
            if metric.type is MetricType.ERROR_RATE:
                n = float(arm.requests[b].sum())
                out[side].append(float(arm.errors[b].sum()) / n if n > 0 else float("nan"))
            elif metric.type is MetricType.LATENCY:
                if arm.buckets is None or steps.bounds is None:
                    out[side].append(float("nan"))
                else:
                    out[side].append(histogram_quantile(0.99, steps.bounds, arm.buckets[b].sum(axis=0)))
            else:
                values = steps.values.get(metric.name)
                chunk = values[side][b] if values is not None else np.array([np.nan])
                chunk = chunk[~np.isnan(chunk)]
                out[side].append(float(chunk.mean()) if len(chunk) else float("nan"))
    return np.asarray(out[0], dtype=np.float64), np.asarray(out[1], dtype=np.float64)


def classify_metric(steps: Steps, metric: MetricSpec, interval: float, confidence: float) -> Classification:
    canary, baseline = interval_points(steps.view(metric.name), metric, interval)
    direction = metric.direction if metric.type is MetricType.SERIES else "increase"
    return classify(canary, baseline, direction=direction, confidence=confidence)
