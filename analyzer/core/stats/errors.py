"""Error rate: an anytime-valid, one-sided e-process on error events, conditioned on traffic.

Why this design (details in docs/statistics.md):

* Condition on what the arms received. In step i the canary served ``nc`` requests and the
  baseline ``nb``, so its share is ``rho = nc / (nc + nb)``. If the canary's error rate is ``r``
  times the baseline's, an error is the canary's with probability
  ``q(r) = r rho / (r rho + 1 - rho)``. The baseline rate itself, and any drift shared by both
  arms (load, upstream trouble), cancel out of that probability.
* Bet on ``r > r0``. For each ``r`` of a grid above the tolerance ``r0``, multiply per step
  ``(q(r)/q(r0))^X ((1-q(r))/(1-q(r0)))^Y`` (X, Y: canary and baseline errors). Given the request
  counts, each factor has expectation <= 1 whenever the true ratio is <= r0 (because
  ``log(1+x) <= x``), for any baseline rate. The grid average is therefore an e-process: the
  chance that it *ever* reaches ``1/alpha`` is at most alpha, however often it is looked at.
* Bursty errors (overdispersion) break the "each error independent" premise: errors then arrive
  in clumps that share a cause, and the split between arms varies more than binomially. Within
  one-minute blocks the judge bets against a composite null -- beta-binomial splits with any
  intra-class correlation up to a cap -- by subtracting, per block, the best log-likelihood gain
  such a null has over the binomial one (``clumping_penalty``). That keeps the e-process exactly
  valid under clumping up to the cap. The cap assumes a CV 0.5 per-minute multiplier until two
  minutes are over (before that no clumping between minutes can be seen), then follows a
  posterior over rho from the blocks seen, so clean runs lose the protection's cost within
  minutes. On top, every step's log-evidence is tempered by an estimated dispersion at other
  time scales (step, five minutes; a quasi-likelihood learning rate <= 1, which keeps validity).
  The first minutes of bursty errors look exactly like a regression, so this protection costs
  speed on real error regressions, most at high traffic (docs/statistics.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln
from scipy.stats import chi2

from analyzer.core.stats.evalue import (
    arm_share,
    block_running_total,
    lagged,
    log_mixture,
    predictable_upper_quantile,
    time_blocks,
)
from analyzer.core.stats.steps import Array

# Ratios (above the tolerance) the mixture bets on, and their prior weights. The price of not
# knowing the size of a regression is log(1 / weight) nats of evidence; x10 is cheap to detect,
# so it gets half a share.
RATIO_GRID: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 10.0)
RATIO_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 0.5)
BLOCK_SCALES: tuple[float, ...] = (60.0, 300.0)  # plus the step itself
# The dispersion estimate starts from "no clumping" worth this many blocks of pseudo-data and is
# the lower bound of a one-sided confidence interval at this level, so that chance alone rarely
# tempers a clean run (which would slow detection) while real clumping shows within a few blocks.
# (A prior that assumes some clumping until shown otherwise was measured again: c = 0.005 per
# event pair on one-minute blocks cut CV 0.2 false rollbacks at 100 req/s from ~8% to ~6% but
# slowed x2 and x1.5 at 100 req/s by 20-30%; docs/statistics.md §6.)
_PRIOR_BLOCKS = 1.0
_DISPERSION_LEVEL = 0.85
_MIN_EVENTS = 4.0  # mean events per block for an estimate at that block scale

# Clumping between minutes (docs/statistics.md §6). A one-minute block's errors may be clumped
# with intra-class correlation rho (a per-minute multiplier with CV 0.5 on each arm: rho ~ 0.12);
# the e-process is made to hold against rho up to a cap: CLUMPING_PRIOR_CAP until
# CLUMPING_FLOOR_BLOCKS blocks have ended (none can be measured before), then an upper quantile of
# a posterior over RHO_GRID from the blocks seen. One block tells little about rho (one degree of
# freedom), so the quantile starts high (CLUMPING_LEVEL_EARLY) and relaxes towards
# CLUMPING_LEVEL_LATE over about CLUMPING_LEVEL_BLOCKS blocks: a fixed 0.75 was both too lax just
# after the floor (CV 0.5 false rollbacks at 100 req/s came at minutes 2-5) and too strict later
# (x2 at 10 req/s detected in 96% of runs instead of 99%).
CLUMPING_BLOCK = 60.0
CLUMPING_PRIOR_CAP = 0.2
CLUMPING_FLOOR_BLOCKS = 1
CLUMPING_LEVEL_EARLY = 0.95
CLUMPING_LEVEL_LATE = 0.5
CLUMPING_LEVEL_BLOCKS = 8.0
RHO_GRID: tuple[float, ...] = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)
RHO_PRIOR: tuple[float, ...] = (0.7, 0.06, 0.06, 0.06, 0.06, 0.06)
BB_GRID: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)  # nulls the penalty maximises over


def q_of(ratio: float | Array, share: Array) -> Array:
    """P(an error is the canary's) when the canary's rate is ``ratio`` times the baseline's."""
    return np.asarray(ratio * share / (ratio * share + 1.0 - share), dtype=np.float64)


def _dispersion_at(x: Array, y: Array, nc: Array, nb: Array, t: Array, block: float) -> Array:
    """Estimated dispersion factor ``[..., T]`` of the arm split over blocks of ``block`` seconds.

    A sandwich (Pearson) estimate on completed blocks: ``phi = sum (X - k q)^2 / sum k q (1-q)``,
    the ratio of the observed to the binomial variance of the canary's share of the block's k
    error events, with ``q`` from the ratio fitted on those blocks (so a real regression is not
    mistaken for clumping). The numerator is corrected for the fitted degree of freedom, the
    estimate starts from ``_PRIOR_BLOCKS`` pseudo-blocks of phi = 1, and what is returned is its
    one-sided ``_DISPERSION_LEVEL`` lower confidence bound (Pearson sum ~ phi chi2(df) / df).
    Step i only uses blocks that ended before it, so the tempering built on it is predictable.
    """
    _, starts = time_blocks(t, block)
    ends = np.r_[starts[1:], len(t)] - 1
    bx, by = np.add.reduceat(x, starts, axis=-1), np.add.reduceat(y, starts, axis=-1)
    bnc, bnb = np.add.reduceat(nc, starts, axis=-1), np.add.reduceat(nb, starts, axis=-1)
    share, valid = arm_share(bnc, bnb)
    cx, cy = np.cumsum(bx, axis=-1), np.cumsum(by, axis=-1)
    cnc, cnb = np.cumsum(bnc, axis=-1), np.cumsum(bnb, axis=-1)
    # The ratio fitted on blocks 1..m (smoothed: no events -> 1), used for the residuals of all
    # of them, so that the numerator loses exactly one degree of freedom.
    ratio = ((cx + 0.5) / (cnc + 1.0)) / ((cy + 0.5) / (cnb + 1.0))
    k = np.where(valid & (bx + by >= 2.0), bx + by, 0.0)  # a block with one event shows no clumping
    informative = (k > 0).astype(np.float64)
    m = np.cumsum(informative, axis=-1)
    num = np.zeros_like(k)
    den = np.zeros_like(k)
    for j in range(k.shape[-1]):
        q = q_of(ratio[..., j : j + 1], share[..., : j + 1])
        num[..., j] = (np.where(k[..., : j + 1] > 0, bx[..., : j + 1] - k[..., : j + 1] * q, 0.0) ** 2).sum(-1)
        den[..., j] = (k[..., : j + 1] * q * (1.0 - q)).sum(-1)
    mean_v = den / np.maximum(m, 1.0)
    raw = (num * m / np.maximum(m - 1.0, 1.0) + _PRIOR_BLOCKS * mean_v) / (den + _PRIOR_BLOCKS * mean_v + 1e-12)
    # A one-sided lower confidence bound: the Pearson sum is about phi chi2(df) / df, so that
    # chance alone rarely tempers a clean run (which would only slow detection).
    df = m - 1.0 + _PRIOR_BLOCKS
    phi = np.clip(raw * df / chi2.ppf(_DISPERSION_LEVEL, np.maximum(df, 1.0)), 1.0, None)
    # Clumping needs several events per block to show, and to matter (phi = 1 + c (k - 1)); with
    # fewer the estimate is mostly noise.
    phi = np.where((m >= 2.0) & (den >= _MIN_EVENTS * 0.25 * m), phi, 1.0)
    done = np.searchsorted(ends, np.arange(len(t)), side="left") - 1
    return np.asarray(np.where(done >= 0, np.take(phi, np.maximum(done, 0), axis=-1), 1.0), dtype=np.float64)


def clumping_cap(x: Array, y: Array, nc: Array, nb: Array, t: Array) -> Array:
    """The largest clumping ``rho`` each one-minute block is protected against, ``[..., B]``.

    ``rho`` is the intra-class correlation of a block's errors: the canary's count among the
    block's K errors varies ``phi = 1 + rho (K - 1)`` times more than binomially (a beta-binomial).
    Until ``CLUMPING_FLOOR_BLOCKS`` blocks have ended the cap is ``CLUMPING_PRIOR_CAP`` (nothing
    can be known about clumping between minutes before one has been seen). Afterwards it
    is an upper quantile (``CLUMPING_LEVEL_EARLY`` relaxing to ``CLUMPING_LEVEL_LATE``) of a
    posterior over ``RHO_GRID``: prior ``RHO_PRIOR``,
    quasi-likelihood of each earlier block's Pearson residual (``~ phi chi2_1``) around the ratio
    fitted through that block, its leverage removed so that the fit does not pass for "no
    clumping". Block j only uses blocks before it: the cap is predictable.
    """
    _, starts = time_blocks(t, CLUMPING_BLOCK)
    bx, by = np.add.reduceat(x, starts, axis=-1), np.add.reduceat(y, starts, axis=-1)
    bnc, bnb = np.add.reduceat(nc, starts, axis=-1), np.add.reduceat(nb, starts, axis=-1)
    share, valid = arm_share(bnc, bnb)
    k = np.where(valid, bx + by, 0.0)
    cx, cy = np.cumsum(np.where(valid, bx, 0.0), axis=-1), np.cumsum(np.where(valid, by, 0.0), axis=-1)
    cnc, cnb = np.cumsum(np.where(valid, bnc, 0.0), axis=-1), np.cumsum(np.where(valid, bnb, 0.0), axis=-1)
    q = q_of(((cx + 0.5) / (cnc + 1.0)) / ((cy + 0.5) / (cnb + 1.0)), share)
    info = k * q * (1.0 - q)
    pearson = np.where(info > 0, (bx - k * q) ** 2 / np.where(info > 0, info, 1.0), 0.0)
    leverage = np.where(info > 0, info / np.maximum(np.cumsum(info, axis=-1), 1e-12), 1.0)
    rho = np.asarray(RHO_GRID).reshape((-1,) + (1,) * k.ndim)
    phi = 1.0 + rho * np.maximum(k - 1.0, 0.0)[None]
    loglik = np.where(k[None] >= 2.0, -0.5 * (1.0 - leverage)[None] * np.log(phi) - 0.5 * pearson[None] / phi, 0.0)
    cap = predictable_upper_quantile(loglik, RHO_GRID, RHO_PRIOR, early=CLUMPING_LEVEL_EARLY,
                                     late=CLUMPING_LEVEL_LATE, blocks=CLUMPING_LEVEL_BLOCKS)
    early = np.arange(cap.shape[-1]) < CLUMPING_FLOOR_BLOCKS
    return np.asarray(np.where(early, CLUMPING_PRIOR_CAP, cap), dtype=np.float64)


def clumping_penalty(x: Array, y: Array, nc: Array, nb: Array, t: Array, tolerance: float) -> Array:
    """log-evidence ``[..., T]`` to take off the binomial e-process so it holds under clumping.

    Per one-minute block, on its counts so far: ``max over rho <= cap`` of
    ``log BetaBinomial(X | K, q0, rho) - log Binomial(X | K, q0)`` (>= 0: rho = 0 is included).
    The binomial e-process minus the sum of these is, for every r of the grid,
    ``prod_blocks P_r(block) / max_rho P_rho(block)``, which is at most the likelihood ratio
    against the *true* null rho, a test martingale: an e-process under every null with clumping
    up to the cap, exactly (docs/statistics.md §6). With no clumping the cap falls and so does the
    penalty. Steps where an arm had no traffic carry nothing, as in the e-process itself.
    """
    _, ok = arm_share(nc, nb)
    x, y, nc, nb = (np.where(ok, a, 0.0) for a in (x, y, nc, nb))
    cap = clumping_cap(x, y, nc, nb, t)
    ids, starts = time_blocks(t, CLUMPING_BLOCK)
    bx, by, bnc, bnb = (block_running_total(a, ids, starts) for a in (x, y, nc, nb))
    share, valid = arm_share(bnc, bnb)
    q0 = q_of(tolerance, share)
    k = bx + by
    cap_i = np.take(cap, ids, axis=-1)
    worst = np.zeros_like(bx)
    for rho in BB_GRID:
        a, b = q0 * (1.0 / rho - 1.0), (1.0 - q0) * (1.0 / rho - 1.0)
        gain = betaln(a + bx, b + k - bx) - betaln(a, b) - bx * np.log(q0) - (k - bx) * np.log1p(-q0)
        worst = np.where(valid & (cap_i >= rho - 1e-12), np.maximum(worst, gain), worst)
    ends = np.r_[starts[1:], len(t)] - 1
    final = worst[..., ends]
    earlier = lagged(np.cumsum(final, axis=-1))
    return np.asarray(worst + np.take(earlier, ids, axis=-1), dtype=np.float64)


def dispersion_eta(x: Array, y: Array, nc: Array, nb: Array, t: Array) -> Array:
    """Learning rate per step in (0, 1]: 1 / the largest dispersion factor seen at any block scale.

    Clumping may be per step (bursts) or last minutes (a bad node); several scales catch both,
    and the finest one reacts within seconds, before a one-minute block has even finished.
    """
    step = float(np.median(np.diff(np.r_[0.0, t]))) if len(t) else BLOCK_SCALES[0]
    phi = np.ones_like(x, dtype=np.float64)
    for block in sorted({step, *BLOCK_SCALES}):
        phi = np.maximum(phi, _dispersion_at(x, y, nc, nb, t, block))
    return np.asarray(1.0 / phi, dtype=np.float64)


def error_log_e(
    x: Array,
    y: Array,
    nc: Array,
    nb: Array,
    t: Array,
    *,
    tolerance: float = 1.0,
    warmup: float = 0.0,
    temper: bool = True,
) -> Array:
    """log e-process path ``[..., T]`` against "canary error rate <= tolerance x baseline's".

    ``x``/``y``: canary/baseline errors per step, ``nc``/``nb``: requests per step, ``t``: step end
    times ``[T]``. Steps that start before ``warmup`` seconds are ignored.
    """
    share, valid = arm_share(nc, nb)
    start = np.r_[0.0, t[:-1]]
    valid = valid & (start >= warmup)
    eta = dispersion_eta(x, y, nc, nb, t) if temper else np.ones_like(share)
    penalty = clumping_penalty(x, y, nc, nb, t, tolerance) if temper else 0.0
    q0 = q_of(tolerance, share)
    logs = []
    for r in RATIO_GRID:
        q = q_of(r * tolerance, share)
        step = x * np.log(q / q0) + y * np.log((1.0 - q) / (1.0 - q0))
        logs.append(np.cumsum(np.where(valid, eta * step, 0.0), axis=-1))
    weights = np.asarray(RATIO_WEIGHTS)
    return log_mixture(np.stack(logs), np.log(weights / weights.sum())) - penalty


@dataclass(frozen=True)
class RatioEstimate:
    """Error-rate ratio canary/baseline: maximum likelihood and a confidence sequence."""

    estimate: float
    low: float
    high: float


_RATIO_AXIS = np.exp(np.linspace(np.log(1 / 100), np.log(100), 241))


def ratio_estimate(x: Array, y: Array, nc: Array, nb: Array, threshold: float) -> RatioEstimate:
    """Conditional MLE of the ratio, and the ratios r0 that the test's own mixture does not reject.

    ``low``: the smallest r0 for which "ratio <= r0" is not rejected at e-value ``threshold`` by
    the same mixture the judge bets with (ratios r0 x grid); ``high``: the mirror image (r0 / grid).
    Each side errs with probability <= 1/threshold at any time, so [low, high] is a
    ``1 - 2/threshold`` confidence sequence, and a rollback's lower bound is above the tolerance.
    1-D inputs (one run).
    """
    share, valid = arm_share(nc, nb)
    xs, ys, sh = x[valid], y[valid], share[valid]
    if xs.sum() + ys.sum() == 0:
        return RatioEstimate(float("nan"), 0.0, float("inf"))
    grid, weights = np.asarray(RATIO_GRID), np.asarray(RATIO_WEIGHTS) / sum(RATIO_WEIGHTS)

    def loglik(ratios: Array) -> Array:
        q = q_of(ratios.reshape(-1, 1), sh[None, :])
        return np.asarray((xs * np.log(q) + ys * np.log1p(-q)).sum(axis=1).reshape(ratios.shape))

    at = loglik(_RATIO_AXIS)
    up = loglik(_RATIO_AXIS[:, None] * grid[None, :])
    down = loglik(_RATIO_AXIS[:, None] / grid[None, :])
    log_w = np.log(weights)[None, :]
    log_up = np.logaddexp.reduce(up + log_w, axis=1) - at
    log_down = np.logaddexp.reduce(down + log_w, axis=1) - at
    limit = np.log(threshold)
    low_ok, high_ok = np.flatnonzero(log_up < limit), np.flatnonzero(log_down < limit)
    low = 0.0 if not len(low_ok) or low_ok[0] == 0 else float(_RATIO_AXIS[low_ok[0]])
    high = float("inf") if not len(high_ok) or high_ok[-1] == len(_RATIO_AXIS) - 1 else float(_RATIO_AXIS[high_ok[-1]])
    return RatioEstimate(float(_RATIO_AXIS[int(np.argmax(at))]), low, high)
