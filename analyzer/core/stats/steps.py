"""Per-step data of one canary analysis, and the cumulative -> per-step conversion.

Every judge works on *increments per step* (requests, errors, bucket counts that happened between
two observation times), because evidence is accumulated step by step. Sources give cumulative
counters (the series format, Prometheus), so they are converted here, with counter resets (a pod
restart) in mind: a restart must never read as negative traffic, nor as a burst of errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def increments(cumulative: Array) -> Array:
    """Cumulative counters ``[T, ...]`` (0 before the first row) -> increment per row, resets handled."""
    values = np.asarray(cumulative, dtype=np.float64)
    previous = np.concatenate([np.zeros_like(values[:1]), values[:-1]], axis=0)
    return np.where(values >= previous, values - previous, values)


def arm_increments(
    requests: Array, errors: Array, buckets: Array | None = None
) -> tuple[Array, Array, Array | None]:
    """One arm's cumulative counters ``[T]`` (and ``le`` buckets ``[T, K]``) -> per-step counts.

    These are sums over pods, so when any of them goes down we cannot tell what happened in that
    step: one pod restarted (the sum drops by that pod's count only) or all did. Such a step is
    given *no* traffic for this arm -- a step without traffic in one arm carries no evidence --
    and counting resumes from the new values. Dropping a step is conservative; guessing could
    invent a burst of errors.
    """
    series = [requests, errors] + ([] if buckets is None else [buckets])
    steps = [np.diff(np.asarray(v, dtype=np.float64), axis=0, prepend=np.zeros_like(v[:1])) for v in series]
    dropped = np.zeros(len(requests), dtype=bool)
    for d in steps:
        dropped |= (d < 0).reshape(len(requests), -1).any(axis=1)
    cleaned = [np.where(dropped.reshape((-1,) + (1,) * (d.ndim - 1)), 0.0, d) for d in steps]
    per_bucket = None if buckets is None else bucket_counts(cleaned[2])
    return cleaned[0], cleaned[1], per_bucket


def bucket_counts(cumulative_le: Array) -> Array:
    """Per-step ``le``-cumulative buckets ``[T, K]`` (ascending bounds) -> counts per bucket.

    Bucket k then counts the requests in ``(bound[k-1], bound[k]]``. Inconsistent input (a lower
    bound counting more than a higher one, e.g. scrapes of different buckets at different
    instants) would give negative counts; those are clipped to 0 rather than trusted.
    """
    per_bucket = np.diff(cumulative_le, axis=-1, prepend=0.0)
    return np.clip(per_bucket, 0.0, None)


@dataclass(frozen=True)
class Arm:
    """One arm's increments per step: requests ``[T]``, errors ``[T]``, buckets ``[T, K]`` or None."""

    requests: Array
    errors: Array
    buckets: Array | None = None


@dataclass(frozen=True)
class Steps:
    """The data of one analysis: step end times (seconds since the start) and both arms.

    ``bounds``: the histogram's upper bounds in seconds (ascending, the last may be ``inf``) when
    the arms have latency buckets. ``values``: per-step readings of ``series`` metrics, by name,
    as (canary, baseline) arrays with NaN where an arm had no reading. ``per_metric``: data of a
    metric that has its own sources (live queries), replacing the arms for that metric.
    """

    t: Array
    canary: Arm
    baseline: Arm
    bounds: Array | None = None
    values: Mapping[str, tuple[Array, Array]] = field(default_factory=dict)
    per_metric: Mapping[str, Steps] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.t.shape[0]
        for arm in (self.canary, self.baseline):
            if arm.requests.shape != (n,) or arm.errors.shape != (n,):
                raise ValueError("every arm needs one requests and one errors value per step")
            if arm.buckets is not None and (self.bounds is None or arm.buckets.shape != (n, len(self.bounds))):
                raise ValueError("bucket counts need bounds and one row per step")

    def view(self, metric: str) -> Steps:
        """The data a metric is judged on: its own if it has any, else the shared arms."""
        return self.per_metric.get(metric, self)

    @property
    def start(self) -> Array:
        """The start of each step: the previous step's end, 0 for the first."""
        return np.concatenate([[0.0], self.t[:-1]])

    def upto(self, index: int) -> Steps:
        """The first ``index + 1`` steps."""
        cut = slice(0, index + 1)

        def arm(a: Arm) -> Arm:
            return Arm(a.requests[cut], a.errors[cut], None if a.buckets is None else a.buckets[cut])

        values = {k: (c[cut], b[cut]) for k, (c, b) in self.values.items()}
        own = {k: v.upto(index) for k, v in self.per_metric.items()}
        return Steps(self.t[cut], arm(self.canary), arm(self.baseline), self.bounds, values, own)
