"""Latency: an anytime-valid, one-sided e-process on Prometheus histogram bucket counts.

Why this design (details in docs/statistics.md):

* Condition on the bucket. Given that a request landed in bucket k, it is the canary's with
  probability ``rho`` (the step's traffic share) when both arms have the same latency
  distribution, and with a probability that *rises with k* when the canary is slower. So we bet
  on the arm labels with a probability ``q_k`` that is non-decreasing in k. Given the request
  counts of the step, such a bet has expectation <= 1 whenever the canary is not stochastically
  slower than the baseline (whatever the shared distribution, load drift included): an
  e-process for "canary is not slower", valid under continuous monitoring.
* Two families of bets, averaged (an average of e-processes is one):
  1. location: exponential tilt of the pooled bucket distribution along normal scores -- the
     likelihood ratio of a log-latency shift, i.e. a slower *whole* distribution;
  2. upper tail: tilt along ``max(z, 0)^3`` -- a wider upper tail with the median in place
     (the tail-only shift that a median or mean test misses).
  Scores come from pooled counts of *earlier* steps only, so every bet is predictable.
* Warm-up: a canary that starts cold is slower for a while, then not. No valid test can tell
  that from a regression while it lasts, so steps that start inside the warm-up are not bet on.
* Jitter: latency that moves by the minute on one arm (a GC pause, a noisy neighbour) makes a
  minute's labels depend on each other, and at high traffic one slow minute looks like a
  regression. Each family's bets are tempered by an estimated per-minute dispersion
  (``block_dispersion``); the warm-up's minutes already feed the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from analyzer.core.stats.evalue import (
    arm_share,
    block_running_total,
    lagged,
    log_mixture,
    log_sigmoid,
    predictable_upper_quantile,
    time_blocks,
)
from analyzer.core.stats.steps import Array

# Tilts the mixtures bet on: location in normal-score units (0.2 is about a 10% slower log-normal
# with sigma 0.5); tail along max(z, 0)^3 (0.02-0.04 is about a p99 10% higher with the median in
# place: the cube puts the bet where a wider tail moves the most mass). Each grid point costs
# log(number of components) nats of evidence, so the grids are short (a ratio of 2 between points
# loses little: neighbours grow too). The tail family gets the larger share because a tail-only
# shift is seen only through the upper buckets (one-sided null), the slower of the two to detect.
LOCATION_GRID: tuple[float, ...] = (0.15, 0.3, 0.6)
TAIL_GRID: tuple[float, ...] = (0.02, 0.04, 0.08)
FAMILY_WEIGHTS = {"location": 0.4, "tail": 0.6}
_PRIOR_COUNT = 0.5  # per bucket, so that scores exist before the first request
_Z_CLIP = 3.0
_TAIL_POWER = 3.0  # tail score: max(z, 0) ** power


def pooled_past(hc: Array, hb: Array) -> Array:
    """Bucket frequencies ``[..., T, K]`` of both arms over the steps *before* each step (smoothed)."""
    pooled = hc + hb
    past = np.cumsum(pooled, axis=-2) - pooled + _PRIOR_COUNT
    return np.asarray(past / past.sum(axis=-1, keepdims=True), dtype=np.float64)


def normal_scores(freq: Array) -> Array:
    """Normal score of each bucket's mid-CDF point, clipped: a rank score that suits log-normal-ish data."""
    upper = np.cumsum(freq, axis=-1)
    mid = np.clip(upper - freq / 2.0, 1e-12, 1.0 - 1e-12)
    return np.asarray(np.clip(ndtri(mid), -_Z_CLIP, _Z_CLIP), dtype=np.float64)


def log_spread(freq: Array, bounds: Array) -> Array:
    """Standard deviation of log latency ``[..., T]`` from bucket frequencies (representative points)."""
    finite = bounds[np.isfinite(bounds)]
    positive = finite[finite > 0]
    floor = positive[0] / 2.0 if len(positive) else 1e-3
    lows = np.maximum(np.r_[finite[0] / 2.0, finite[:-1]], floor)
    points = np.r_[np.sqrt(lows * np.maximum(finite, floor)), np.full(len(bounds) - len(finite), finite[-1] * 2.0)]
    logs = np.log(points)
    mean = (freq * logs).sum(axis=-1, keepdims=True)
    return np.asarray(np.sqrt((freq * (logs - mean) ** 2).sum(axis=-1)).clip(0.05), dtype=np.float64)


def _tilt(freq: Array, score: Array, theta: float) -> Array:
    """Log density ratio of the exponential tilt ``freq * exp(theta * score)`` (normalised) to ``freq``."""
    raw = theta * score
    top = raw.max(axis=-1, keepdims=True)
    norm = top + np.log((freq * np.exp(raw - top)).sum(axis=-1, keepdims=True))
    return np.asarray(raw - norm, dtype=np.float64)


def _bet_path(hc: Array, hb: Array, null_logit: Array, tilt: Array, use: Array, eta: Array | float = 1.0) -> Array:
    """Cumulative log-likelihood ratio of the label bet with canary log-odds ``null_logit + tilt``,
    each step's tempered by ``eta``."""
    alt = null_logit + tilt
    step = hc * (log_sigmoid(alt) - log_sigmoid(null_logit)) + hb * (log_sigmoid(-alt) - log_sigmoid(-null_logit))
    return np.cumsum(np.where(use, eta * step.sum(axis=-1), 0.0), axis=-1)


# Latency that moves by the minute on one arm (a GC pause, a noisy neighbour, one slow pod)
# makes the arm labels of a minute's requests depend on each other, and at high traffic one slow
# minute looks like a regression. Model: in minute m the canary's tilt is off by a random theta_m
# with variance c (in the family's score units), so a block's score statistic U (binomial
# variance V) has variance V (1 + V c): the damage grows with traffic, as for clumped errors.
# Each family's bets are tempered by 1 / (1 + V c), c an upper quantile of a posterior over
# C_GRID from the blocks seen (quasi-likelihood; a predictable learning rate <= 1 keeps the
# e-process valid when c is not underestimated). c = 8 s^2 for a per-minute shift of sd s on
# log latency with sigma 0.5: 0.003 for s = 2%, 0.02 for s = 5%. At 1 req/s V c is tiny whatever
# c is, so low traffic pays (almost) nothing.
DISPERSION_BLOCK = 60.0
C_GRID: tuple[float, ...] = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
C_PRIOR: tuple[float, ...] = (0.7, 0.3 / 7, 0.3 / 7, 0.3 / 7, 0.3 / 7, 0.3 / 7, 0.3 / 7, 0.3 / 7)
C_LEVEL_EARLY = 0.95
C_LEVEL_LATE = 0.5
C_LEVEL_BLOCKS = 15.0


def block_dispersion(hc: Array, hb: Array, share: Array, valid: npt.NDArray[np.bool_], score: Array, t: Array) -> Array:
    """Dispersion factor ``[..., T]`` (>= 1) to temper each step's bets on ``score`` by.

    Per one-minute block B: the score statistic ``U = sum_k (canary_k - n_k rho) s_k`` and its
    binomial variance ``V``. Without minute-level effects ``(U - theta V)^2 / V ~ chi2_1`` around
    the fitted tilt ``theta`` (so a steady regression is not taken for dispersion); with them it
    is ``(1 + V c)`` times that, c in the score's own units; written ``1 + W c`` with
    ``W = sum n rho (1 - rho)`` and c per unit of score variance. The cap on c for block j uses
    only blocks before it; W (a function of the request counts, which the bets condition on) is
    the larger of the previous block's and the current block's so far.
    """
    n = hc + hb
    sh = np.where(valid, share, 0.0)[..., None]
    # centred on the step's mean score: the step's share is its own, so labels are conditioned on
    # their total and only the score's spread within the step carries information
    centred = score - (n * score).sum(axis=-1, keepdims=True) / np.maximum(n.sum(axis=-1, keepdims=True), 1.0)
    u = np.where(valid, ((hc - n * sh) * centred).sum(axis=-1), 0.0)
    v = np.where(valid, (n * sh * (1.0 - sh) * centred**2).sum(axis=-1), 0.0)
    # c is in standardised score units (per unit of score variance), so one grid and one prior
    # serve both families: the damage scales with the requests' binomial weight, not the score's
    w = np.where(valid, n.sum(axis=-1) * sh[..., 0] * (1.0 - sh[..., 0]), 0.0)
    step_block, starts = time_blocks(t, DISPERSION_BLOCK)
    bu, bv = np.add.reduceat(u, starts, axis=-1), np.add.reduceat(v, starts, axis=-1)
    bw = np.add.reduceat(w, starts, axis=-1)
    cu, cv = np.cumsum(bu, axis=-1), np.cumsum(bv, axis=-1)
    theta = cu / np.maximum(cv, 1e-12)
    info = bv > 1e-9
    resid = np.where(info, (bu - theta * bv) ** 2 / np.where(info, bv, 1.0), 0.0)
    keep = np.where(info, 1.0 - bv / np.maximum(cv, 1e-12), 0.0)  # the fit's leverage removed
    c = np.asarray(C_GRID).reshape((-1,) + (1,) * bu.ndim)
    phi = 1.0 + bw[None] * c
    loglik = keep[None] * (-0.5 * np.log(phi) - 0.5 * resid[None] / phi)
    cap = predictable_upper_quantile(loglik, C_GRID, C_PRIOR, early=C_LEVEL_EARLY, late=C_LEVEL_LATE,
                                     blocks=C_LEVEL_BLOCKS)
    so_far = block_running_total(w, step_block, starts)
    previous = np.take(lagged(bw), step_block, axis=-1)
    return np.asarray(1.0 + np.maximum(so_far, previous) * np.take(cap, step_block, axis=-1), dtype=np.float64)


def latency_log_e(
    hc: Array, hb: Array, t: Array, bounds: Array, *, tolerance: float = 1.0, warmup: float = 0.0,
    temper: bool = True,
) -> Array:
    """log e-process path ``[..., T]`` against "the canary is not slower than the baseline".

    ``hc``/``hb``: per-bucket counts per step ``[..., T, K]``; ``bounds``: upper bounds ``[K]``.
    With ``tolerance`` s > 1 the null is "at most s times slower" (a log-latency shift of ln s,
    converted to score units with the pooled spread): an approximation, exact for s = 1.
    """
    freq = pooled_past(hc, hb)
    z = normal_scores(freq)
    share, valid = arm_share(hc.sum(axis=-1), hb.sum(axis=-1))
    start = np.r_[0.0, t[:-1]]
    use = valid & (start >= warmup)
    base = np.log(share / (1.0 - share))[..., None]
    if tolerance != 1.0:
        theta0 = (np.log(tolerance) / log_spread(freq, bounds))[..., None]
        shift = theta0 * z
        top = shift.max(axis=-1, keepdims=True)
        base = base + shift - (top + np.log((freq * np.exp(shift - top)).sum(axis=-1, keepdims=True)))
    upper_tail = np.clip(z, 0.0, None) ** _TAIL_POWER
    families: list[tuple[str, Array, list[Array]]] = [
        ("location", z, [_tilt(freq, z, th) for th in LOCATION_GRID]),
        ("tail", upper_tail, [_tilt(freq, upper_tail, th) for th in TAIL_GRID]),
    ]
    paths, weights = [], []
    for name, score, tilts in families:
        eta = 1.0 / block_dispersion(hc, hb, share, valid, score, t) if temper else 1.0
        for tilt in tilts:
            paths.append(_bet_path(hc, hb, base, tilt, use, eta))
            weights.append(FAMILY_WEIGHTS[name] / len(tilts))
    return log_mixture(np.stack(paths), np.log(np.asarray(weights)))


@dataclass(frozen=True)
class ShiftEstimate:
    """Latency scale canary/baseline (e.g. 1.1 = 10% slower) with a (1-alpha) confidence sequence."""

    estimate: float
    low: float
    high: float


_THETA_AXIS = np.linspace(-2.0, 2.0, 101)  # 0.04 score units: ~2% latency resolution


def shift_estimate(hc: Array, hb: Array, bounds: Array, threshold: float) -> ShiftEstimate:
    """Location tilt (normal-score units) by maximum likelihood, inverted into a confidence sequence
    at e-value ``threshold`` (coverage 1 - 1/threshold), reported as a latency scale factor
    ``exp(theta * spread)``. It describes a shift of the whole distribution; a tail-only change
    shows in the percentiles rather than here. 1-D run inputs ``[T, K]``."""
    freq = pooled_past(hc, hb)
    z = normal_scores(freq)
    share, valid = arm_share(hc.sum(axis=-1), hb.sum(axis=-1))
    if not valid.any():
        return ShiftEstimate(float("nan"), 0.0, float("inf"))
    f, zz, c, b = freq[valid], z[valid], hc[valid], hb[valid]
    base = np.log(share[valid] / (1.0 - share[valid]))[:, None]
    thetas = _THETA_AXIS[:, None, None]
    raw = thetas * zz[None]  # [G, T, K]: every candidate tilt at once
    top = raw.max(axis=-1, keepdims=True)
    alt = base[None] + raw - (top + np.log((f[None] * np.exp(raw - top)).sum(axis=-1, keepdims=True)))
    loglik = (c[None] * log_sigmoid(alt) + b[None] * log_sigmoid(-alt)).sum(axis=(1, 2))
    log_e = np.logaddexp.reduce(loglik) - np.log(len(loglik)) - loglik
    inside = np.flatnonzero(log_e < np.log(threshold))
    pooled_now = (hc + hb).sum(axis=0) + _PRIOR_COUNT
    spread = float(log_spread(pooled_now / pooled_now.sum(), bounds))

    def scale(theta: float) -> float:
        return float(np.exp(theta * spread))

    low = 0.0 if inside[0] == 0 else scale(_THETA_AXIS[inside[0]])
    high = float("inf") if inside[-1] == len(_THETA_AXIS) - 1 else scale(_THETA_AXIS[inside[-1]])
    return ShiftEstimate(scale(_THETA_AXIS[int(np.argmax(loglik))]), low, high)


def histogram_quantile(q: float, bounds: Array, counts: Array) -> float:
    """Prometheus' ``histogram_quantile`` on per-bucket counts (linear inside the bucket); NaN if empty."""
    total = float(counts.sum())
    if total <= 0:
        return float("nan")
    cumulative = np.cumsum(counts)
    rank = q * total
    k = int(np.searchsorted(cumulative, rank, side="left"))
    k = min(k, len(bounds) - 1)
    if not np.isfinite(bounds[k]):
        finite = bounds[np.isfinite(bounds)]
        return float(finite[-1]) if len(finite) else float("nan")
    lower = 0.0 if k == 0 else float(bounds[k - 1])
    if k == 0 and bounds[0] <= 0:
        return float(bounds[0])
    below = 0.0 if k == 0 else float(cumulative[k - 1])
    inside = float(counts[k])
    return lower + (float(bounds[k]) - lower) * ((rank - below) / inside if inside > 0 else 1.0)
