"""A canary/baseline traffic simulator: per-step counts, vectorised over many runs.

Used by the detection benchmark, the tests and the docs; its output can be written in the series
format. The model follows ../shared/statistics.md §5.1: Poisson requests per step, binomial
errors, log-normal latency put into histogram buckets, plus the realism knobs (baseline error
rate varying per rollout, shared drift, overdispersed errors, canary warm-up, traffic-share
steps, counter resets).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from analyzer.core.stats.steps import Array

# Envoy/Istio's default histogram buckets (ms), in seconds.
ISTIO_BOUNDS = np.array([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, math.inf]) / 1000.0
Z99 = float(norm.ppf(0.99))


@dataclass(frozen=True)
class Scenario:
    """One cell: traffic, baseline behaviour, the canary's regression, and realism knobs.

    ``p99_scale``: every canary latency x s. ``p99_tail``: the canary's p99 x s with the median in
    place (wider log-normal). ``share_steps``: ((from_t, canary share of all traffic), ...)
    overriding the rates' split. ``overdispersion``: CV of a per-minute gamma multiplier on each
    arm's error rate. ``drift``: sd per step of a log random walk shared by both arms (load and
    error rate). ``warmup``: (factor, seconds) canary latency x factor decaying linearly to x1.
    ``latency_jitter``: sd of a per-minute shift of log latency, independent per arm (a GC pause,
    a noisy neighbour: latency that moves by the minute on one arm without a regression).
    """

    canary_rps: float = 10.0
    baseline_rps: float | None = None
    error_rate: float = 0.005
    error_ratio: float = 1.0
    median: float = 0.1
    sigma: float = 0.5
    p99_scale: float = 1.0
    p99_tail: float = 1.0
    error_rate_range: tuple[float, float] | None = None
    drift: float = 0.0
    overdispersion: float = 0.0
    warmup: tuple[float, float] | None = None
    share_steps: tuple[tuple[float, float], ...] = ()
    latency_jitter: float = 0.0
    duration: float = 1800.0
    step: float = 10.0


@dataclass(frozen=True)
class SimData:
    """Per-step increments: t ``[T]``; requests/errors ``[R, T]``; buckets ``[R, T, K]``."""

    t: Array
    nc: Array
    nb: Array
    xc: Array
    xb: Array
    hc: Array
    hb: Array
    bounds: Array


def _bucket_probs(median: Array, sigma: float, bounds: Array) -> Array:
    cdf = norm.cdf((np.log(bounds)[None, :] - np.log(median)[:, None]) / sigma)
    return np.asarray(np.diff(np.concatenate([np.zeros((len(median), 1)), cdf], axis=1), axis=1))


def simulate(s: Scenario, runs: int, seed: int, bounds: Array = ISTIO_BOUNDS) -> SimData:
    rng = np.random.default_rng(seed)
    steps = int(round(s.duration / s.step))
    t = np.arange(1, steps + 1) * s.step
    lam_c, lam_b = s.canary_rps, s.canary_rps if s.baseline_rps is None else s.baseline_rps
    rate_c = np.full(steps, lam_c)
    rate_b = np.full(steps, lam_b)
    for start, share in s.share_steps:
        on = (t - s.step) >= start
        rate_c[on], rate_b[on] = share * (lam_c + lam_b), (1 - share) * (lam_c + lam_b)
    load = np.ones((runs, steps))
    err_drift = np.ones((runs, steps))
    if s.drift > 0:
        load = np.exp(np.cumsum(rng.normal(0, s.drift, (runs, steps)), axis=1))
        err_drift = np.exp(np.cumsum(rng.normal(0, s.drift, (runs, steps)), axis=1))
    nc = rng.poisson(rate_c * s.step * load)
    nb = rng.poisson(rate_b * s.step * load)
    p0 = np.full((runs, 1), s.error_rate)
    if s.error_rate_range is not None:
        lo, hi = s.error_rate_range
        p0 = np.exp(rng.uniform(np.log(lo), np.log(hi), (runs, 1)))
    pc, pb = p0 * s.error_ratio * err_drift, p0 * err_drift
    minute = np.minimum((t - s.step) // 60, steps).astype(int)  # the minute each step falls in
    n_min = int(minute.max()) + 1
    if s.overdispersion > 0:
        shape = 1.0 / s.overdispersion**2
        pc = pc * rng.gamma(shape, 1 / shape, (runs, n_min))[:, minute]
        pb = pb * rng.gamma(shape, 1 / shape, (runs, n_min))[:, minute]
    xc = rng.binomial(nc, np.clip(pc, 0, 1))
    xb = rng.binomial(nb, np.clip(pb, 0, 1))
    sigma_c = s.sigma + math.log(s.p99_tail) / Z99
    med_c = np.full(steps, s.median * s.p99_scale)
    if s.warmup is not None:
        factor, length = s.warmup
        med_c = med_c * (1 + (factor - 1) * np.clip(1 - (t - s.step / 2) / length, 0, None))
    if s.latency_jitter > 0:
        shift_c = np.exp(rng.normal(0.0, s.latency_jitter, (runs, n_min)))[:, minute]
        shift_b = np.exp(rng.normal(0.0, s.latency_jitter, (runs, n_min)))[:, minute]
        probs_c = _bucket_probs((med_c[None, :] * shift_c).reshape(-1), sigma_c, bounds).reshape(runs, steps, -1)
        probs_b = _bucket_probs((s.median * shift_b).reshape(-1), s.sigma, bounds).reshape(runs, steps, -1)
        hc, hb = rng.multinomial(nc, probs_c), rng.multinomial(nb, probs_b)
    else:
        hc = rng.multinomial(nc, _bucket_probs(med_c, sigma_c, bounds)[None, :, :])
        hb = rng.multinomial(nb, _bucket_probs(np.array([s.median]), s.sigma, bounds)[0])
    f = np.float64
    return SimData(t.astype(f), nc.astype(f), nb.astype(f), xc.astype(f), xb.astype(f), hc.astype(f),
                   hb.astype(f), bounds)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def series_lines(data: SimData, prefix: str = "run", *, buckets: bool = True,
                 resets: tuple[float, ...] = ()) -> Iterator[dict[str, object]]:
    """The runs as series-format records (cumulative counts since the start).

    ``resets``: times at which the canary's counters restart from 0, as after a pod restart.
    """
    runs = data.nc.shape[0]
    for r in range(runs):
        acc = {"canary": np.zeros(2 + len(data.bounds)), "baseline": np.zeros(2 + len(data.bounds))}
        for i, t in enumerate(data.t):
            previous = float(data.t[i - 1]) if i > 0 else 0.0
            for arm, (n, x, h) in (("canary", (data.nc, data.xc, data.hc)), ("baseline", (data.nb, data.xb, data.hb))):
                if arm == "canary" and any(previous < rt <= t for rt in resets):
                    acc[arm][:] = 0  # the pod restarted during this step: counters start again
                acc[arm][0] += n[r, i]
                acc[arm][1] += x[r, i]
                acc[arm][2:] += np.cumsum(h[r, i])
            record: dict[str, object] = {"run": f"{prefix}-{r}", "t": float(t)}
            for arm in ("baseline", "canary"):
                a = acc[arm]
                entry: dict[str, object] = {"requests": int(a[0]), "errors": int(a[1])}
                if buckets:
                    entry["latency_buckets"] = {_le(b): int(v) for b, v in zip(data.bounds, a[2:], strict=True)}
                record[arm] = entry
            yield record
