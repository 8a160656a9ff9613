"""Mann-Whitney (Wilcoxon rank-sum) as Kayenta's judge uses it.

Kayenta's ``MannWhitney.scala`` is a port of R's ``wilcox.test(x, y, conf.int = TRUE,
exact = FALSE, correct = TRUE)``: the confidence interval for the shift ``x - y`` and the
Hodges-Lehmann estimate are the roots, in ``mu``, of the continuity-corrected, tie-corrected
normal statistic of the rank sum of ``x - mu`` against ``y`` (R: ``uniroot`` at tolerance 1e-4).

That statistic is a decreasing step function of ``mu`` that only jumps at pairwise differences
``x_i - y_j``. We find its crossing exactly, by binary search over those differences: the root
is the difference where it jumps past the target (or the middle of an interval where it equals
the target). This is R's answer up to R's tolerance, minus its rounding: with many ties (per-minute
error rates of 0) the lower bound would otherwise land at -0.00002 or +0.000006 -- Pass or High --
by solver accident. (Kayenta also builds its Brent solver with a relative accuracy of 1000,
which stops it at a bracket end; we do not reproduce that.)

``x`` is the experiment (canary), ``y`` the control (baseline). ``mann_whitney_batch`` does the
same for many equal-size runs at once, for the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from analyzer.core.stats.steps import Array


class AllTiedError(ValueError):
    """Every observation is tied: no rank statistic (R: "cannot compute confidence interval ...")."""


@dataclass(frozen=True)
class MannWhitneyResult:
    """Two-sided p-value, one-sided p-value for "x > y", CI of the shift x - y, Hodges-Lehmann estimate."""

    p_value: float
    p_greater: float
    low: float
    high: float
    estimate: float


def _parts(x: Array, y: Array, mu: float) -> tuple[float, float]:
    """Centred rank sum of ``x - mu`` and its tie-corrected standard deviation."""
    combined = np.r_[x - mu, y]
    ranks = rankdata(combined)
    m, n = len(x), len(y)
    _, counts = np.unique(combined, return_counts=True)
    ties = float(((counts**3) - counts).sum())
    dz = float(ranks[:m].sum()) - m * (m + 1) / 2 - m * n / 2
    sigma = float(np.sqrt((m * n / 12) * ((m + n + 1) - ties / ((m + n) * (m + n - 1)))))
    return dz, sigma


def _statistic(x: Array, y: Array, mu: float) -> float:
    dz, sigma = _parts(x, y, mu)
    if sigma == 0:
        raise AllTiedError("cannot compute confidence interval when all observations are tied")
    return (dz - 0.5 * float(np.sign(dz))) / sigma  # continuity correction towards 0


def mann_whitney(x: Array, y: Array, confidence: float = 0.98) -> MannWhitneyResult:
    """Kayenta/R Mann-Whitney on two samples (no NaN); raises AllTiedError when all values tie."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        raise ValueError("both samples need at least one value")
    p_two = float(min(1.0, 2.0 * norm.sf(abs(_statistic(x, y, 0.0)))))
    dz, sigma = _parts(x, y, 0.0)
    p_greater = float(norm.sf((dz - 0.5) / sigma))  # R's alternative = "greater": correction -0.5
    low, high, estimate = (float(v[0]) for v in mann_whitney_batch(x[None, :], y[None, :], confidence))
    return MannWhitneyResult(p_two, p_greater, low, high, estimate)


def _batch_statistic(x: Array, y: Array, mu: Array) -> Array:
    combined = np.concatenate([x - mu[:, None], y], axis=1)
    avg = rankdata(combined, axis=1)
    tie = rankdata(combined, method="max", axis=1) - rankdata(combined, method="min", axis=1) + 1
    m, n = x.shape[1], y.shape[1]
    ties = (tie**2 - 1).sum(axis=1)  # = sum over tie groups of t^3 - t
    dz = avg[:, :m].sum(axis=1) - m * (m + 1) / 2 - m * n / 2
    var = (m * n / 12) * ((m + n + 1) - ties / ((m + n) * (m + n - 1)))
    sigma = np.sqrt(np.clip(var, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(sigma > 0, (dz - 0.5 * np.sign(dz)) / sigma, np.nan), dtype=np.float64)


def _probe_points(diffs: Array) -> Array:
    """mu values where the step function is evaluated: every difference, and between neighbours."""
    mids = (diffs[..., 1:] + diffs[..., :-1]) / 2
    out = np.empty(diffs.shape[:-1] + (2 * diffs.shape[-1] - 1,))
    out[..., 0::2], out[..., 1::2] = diffs, mids
    return out


def mann_whitney_batch(x: Array, y: Array, confidence: float = 0.98) -> tuple[Array, Array, Array]:
    """(low, high, estimate) ``[R]`` for rows of equal-size samples ``x [R, m]``, ``y [R, n]``.

    Same roots as ``mann_whitney`` (tested), by a binary search run on all rows at once; rows
    where every value ties get NaN.
    """
    z = float(norm.ppf(1.0 - (1.0 - confidence) / 2))
    diffs = np.sort((x[:, :, None] - y[:, None, :]).reshape(x.shape[0], -1), axis=1)
    probes = _probe_points(diffs)
    rows = np.arange(x.shape[0])

    def stat_at(index: Array) -> Array:
        return _batch_statistic(x, y, probes[rows, index])

    def root(zq: float) -> Array:
        n = probes.shape[1]
        lo_v, hi_v = stat_at(np.zeros(len(rows), int)) - zq, stat_at(np.full(len(rows), n - 1)) - zq
        # first probe with value <= 0 (values decrease along probes; duplicates of diffs are harmless)
        lo, hi = np.zeros(len(rows), int), np.full(len(rows), n - 1)
        while np.any(lo < hi):
            mid = (lo + hi) // 2
            ok = stat_at(mid) - zq <= 0
            hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid + 1)
        value = stat_at(lo) - zq
        # end of the run of exact zeros (flat root)
        a, b = lo.copy(), np.full(len(rows), n - 1)
        while np.any(a < b):
            mid = (a + b + 1) // 2
            zero = stat_at(mid) - zq >= 0
            a, b = np.where(zero, mid, a), np.where(zero, b, mid - 1)
        # The first probe at or below 0 is a difference (the jump is there) or the midpoint just
        # after one (the jump is at that difference); a run of exact zeros is a flat root.
        jump = probes[rows, lo - (lo % 2)]
        out = np.where(value == 0, (probes[rows, lo] + probes[rows, a]) / 2, jump)
        out = np.where(lo_v <= 0, probes[:, 0], out)
        out = np.where(hi_v >= 0, probes[:, -1], out)
        return np.asarray(np.where(np.isnan(lo_v), np.nan, out), dtype=np.float64)

    return root(z), root(-z), root(0.0)
