"""The e-processes: exact expectation under the null (enumeration), and false rollbacks under
alpha on simulated A/A rollouts, including traffic shifts, drift and varying baseline rates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binom, multinomial

from analyzer.core.stats.errors import error_log_e
from analyzer.core.stats.evalue import first_crossing
from analyzer.core.stats.latency import latency_log_e
from analyzer.core.stats.sequential import combine
from analyzer.judge.simulate import Scenario, simulate

ALPHA = 0.05


def _expected_error_factor(nc: int, nb: int, pc: float, pb: float, tolerance: float) -> float:
    """E[e-value after one step] by summing over every (canary errors, baseline errors)."""
    t = np.array([10.0])
    total = 0.0
    for x in range(nc + 1):
        for y in range(nb + 1):
            log_e = error_log_e(np.array([x], float), np.array([y], float), np.array([nc], float),
                                np.array([nb], float), t, tolerance=tolerance, temper=False)
            total += binom.pmf(x, nc, pc) * binom.pmf(y, nb, pb) * math.exp(float(log_e[-1]))
    return total


@pytest.mark.parametrize(("nc", "nb", "pb", "ratio", "tolerance"), [
    (20, 20, 0.05, 1.0, 1.0),  # equal arms
    (5, 45, 0.1, 1.0, 1.0),  # a 10% canary
    (30, 10, 0.3, 1.0, 1.0),  # high error rate: the "rare events" approximation is not needed
    (20, 20, 0.05, 1.2, 1.2),  # at the tolerance margin
    (20, 20, 0.05, 0.5, 1.0),  # a better canary
])
def test_error_evalue_has_expectation_at_most_one_under_the_null(nc: int, nb: int, pb: float, ratio: float,
                                                                 tolerance: float) -> None:
    assert _expected_error_factor(nc, nb, pb * ratio, pb, tolerance) <= 1.0 + 1e-12


def test_error_evalue_grows_under_a_regression() -> None:
    assert _expected_error_factor(20, 20, 0.15, 0.05, 1.0) > 1.5


def _expected_latency_factor(nc: int, nb: int, fc: np.ndarray, fb: np.ndarray) -> float:
    """E[E_2] / E_1: the expected growth of the e-value over a step, given a fixed first step
    (which also sets the bucket scores). <= 1 is the supermartingale property."""
    bounds = np.array([0.1, 0.2, 0.4, math.inf])
    first = np.array([[5.0, 5.0, 5.0, 5.0]])
    t = np.array([10.0, 20.0])
    start = math.exp(float(latency_log_e(first, first, t[:1], bounds)[-1]))
    total = 0.0
    for xc in itertools.product(range(nc + 1), repeat=len(fc)):
        if sum(xc) != nc:
            continue
        for xb in itertools.product(range(nb + 1), repeat=len(fb)):
            if sum(xb) != nb:
                continue
            hc = np.vstack([first, [xc]]).astype(float)
            hb = np.vstack([first, [xb]]).astype(float)
            log_e = latency_log_e(hc, hb, t, bounds)
            total += multinomial.pmf(xc, nc, fc) * multinomial.pmf(xb, nb, fb) * math.exp(float(log_e[-1]))
    return total / start


def test_latency_evalue_is_valid_for_same_and_faster_canaries() -> None:
    base = np.array([0.4, 0.3, 0.2, 0.1])
    assert _expected_latency_factor(3, 3, base, base) <= 1.0 + 1e-12
    faster = np.array([0.6, 0.25, 0.1, 0.05])  # stochastically smaller: not a regression
    assert _expected_latency_factor(3, 3, faster, base) <= 1.0 + 1e-12
    slower = np.array([0.1, 0.2, 0.3, 0.4])
    assert _expected_latency_factor(3, 3, slower, base) > 1.0


def _false_rollbacks(scenario: Scenario, runs: int, seed: int) -> int:
    d = simulate(scenario, runs, seed)
    le = error_log_e(d.xc, d.xb, d.nc, d.nb, d.t)
    ll = latency_log_e(d.hc, d.hb, d.t, d.bounds, warmup=120.0)
    combined = combine([le, ll], [0.5, 0.5], [0, 12])  # one alpha shared; latency bets from 120 s
    return int((first_crossing(combined, math.log(1 / ALPHA)) >= 0).sum())


# Under alpha = 5%, 300 runs give at most 24 false rollbacks with probability 99% (binomial).
LIMIT = int(binom.ppf(0.99, 300, ALPHA))


@pytest.mark.parametrize("scenario", [
    Scenario(canary_rps=1.0),
    Scenario(canary_rps=10.0),
    Scenario(canary_rps=100.0, duration=600.0),
    Scenario(canary_rps=10.0, error_rate_range=(0.001, 0.01)),
    Scenario(canary_rps=10.0, drift=0.05),
    Scenario(canary_rps=2.0, baseline_rps=38.0, share_steps=((0.0, 0.05), (600.0, 0.25), (1200.0, 0.5))),
    Scenario(canary_rps=10.0, warmup=(1.5, 120.0)),
], ids=["1rps", "10rps", "100rps", "p0-varies", "drift", "share-5-25-50", "warm-up"])
def test_false_rollbacks_stay_under_alpha_on_aa_rollouts(scenario: Scenario) -> None:
    assert _false_rollbacks(scenario, 300, seed=17) <= LIMIT


def test_warmup_allowance_is_what_keeps_a_warming_canary(  # the knob matters: without it, it fails
) -> None:
    d = simulate(Scenario(canary_rps=10.0, warmup=(1.5, 120.0)), 50, 5)
    no_allowance = latency_log_e(d.hc, d.hb, d.t, d.bounds, warmup=0.0)
    assert (first_crossing(no_allowance, math.log(40)) >= 0).mean() > 0.5


def test_combine_resplits_by_evidence_and_stays_a_martingale() -> None:
    """Two metrics with martingale factors 0.5 / 1.5 (mean 1); the second starts at step 2. At the
    start the wealth is re-split by weight x each metric's own e-value so far (a predictable
    choice), so the expected final e-value is exactly 1: enumerate every outcome."""
    steps, start = 4, 2
    total = 0.0
    for a in itertools.product((0.5, 1.5), repeat=steps):
        for b in itertools.product((0.5, 1.5), repeat=steps - start):
            la = np.log(np.cumprod(a))
            lb = np.r_[np.zeros(start), np.log(np.cumprod(b))]
            combined = combine([la, lb], [0.5, 0.5], [0, start])
            total += math.exp(float(combined[-1])) / 2 ** (2 * steps - start)
            # before the start the first metric holds the whole budget; after it, weights w x E_own
            assert np.allclose(combined[:start], la[:start])
            e_a = math.exp(float(la[start - 1]))
            expected = e_a * (e_a / (e_a + 1) * math.exp(float(la[-1] - la[start - 1]))
                              + 1 / (e_a + 1) * math.exp(float(lb[-1])))
            assert math.isclose(math.exp(float(combined[-1])), expected, rel_tol=1e-12)
    assert math.isclose(total, 1.0, rel_tol=1e-12)


def test_dispersion_estimate_tracks_clumping_and_leaves_clean_runs_alone() -> None:
    from analyzer.core.stats.errors import dispersion_eta

    bursty = simulate(Scenario(canary_rps=10.0, overdispersion=0.5), 200, 11)
    clean = simulate(Scenario(canary_rps=10.0), 200, 12)
    phi_bursty = 1 / dispersion_eta(bursty.xc, bursty.xb, bursty.nc, bursty.nb, bursty.t)
    phi_clean = 1 / dispersion_eta(clean.xc, clean.xb, clean.nc, clean.nb, clean.t)
    at_20_min = int(np.searchsorted(bursty.t, 1200.0))
    assert np.median(phi_bursty[:, at_20_min]) > 1.2  # the true minute-scale factor is ~1.75
    assert np.mean(phi_clean[:, at_20_min] > 1.0) < 0.25


def _expected_clumped_factor(k: int, rho: float, tolerance: float = 1.0) -> tuple[float, float]:
    """E[e-value after one step] with and without the clumping penalty, when the canary's share of
    the step's k errors is beta-binomial with intra-class correlation rho (equal traffic)."""
    from scipy.stats import betabinom

    t, n = np.array([10.0]), np.array([1000.0])
    with_penalty = without = 0.0
    for x in range(k + 1):
        p = binom.pmf(x, k, 0.5) if rho == 0 else betabinom.pmf(x, k, 0.5 * (1 / rho - 1), 0.5 * (1 / rho - 1))
        args = (np.array([float(x)]), np.array([float(k - x)]), n, n, t)
        with_penalty += p * math.exp(float(error_log_e(*args, tolerance=tolerance)[-1]))
        without += p * math.exp(float(error_log_e(*args, tolerance=tolerance, temper=False)[-1]))
    return with_penalty, without


@pytest.mark.parametrize("k", [5, 30, 120])
@pytest.mark.parametrize("rho", [0.0, 0.02, 0.1])
def test_clumping_penalty_keeps_the_evalue_valid_under_beta_binomial_nulls(k: int, rho: float) -> None:
    with_penalty, _ = _expected_clumped_factor(k, rho)
    assert with_penalty <= 1.0 + 1e-9


def test_without_the_penalty_clumped_errors_inflate_the_evalue() -> None:
    """The reason for the penalty: a one-minute clump (rho 0.1, about a CV 0.5 multiplier per arm)
    gives the plain binomial e-process an expectation far above 1 at high traffic."""
    with_penalty, without = _expected_clumped_factor(120, 0.1)
    assert without > 5.0 and with_penalty <= 1.0


def test_clumping_penalty_is_never_evidence_and_ignores_steps_without_traffic() -> None:
    from analyzer.core.stats.errors import clumping_penalty

    d = simulate(Scenario(canary_rps=100.0, overdispersion=0.5, duration=300.0), 20, 3)
    nc = d.nc.copy()
    nc[:, 5:9] = 0.0  # the canary had no traffic (or its counters were reset) in these steps
    penalty = clumping_penalty(d.xc, d.xb, nc, d.nb, d.t, 1.0)
    assert (penalty >= 0).all()
    assert np.allclose(penalty[:, 5:9], penalty[:, 4:5])  # nothing is added while the canary is away
    no_canary = error_log_e(d.xc * 0, d.xb, nc * 0, d.nb, d.t)
    assert np.allclose(no_canary, 0.0)  # no traffic is no evidence either way


def test_clumping_cap_learns_clean_and_bursty_minutes_apart() -> None:
    from analyzer.core.stats.errors import CLUMPING_FLOOR_BLOCKS, CLUMPING_PRIOR_CAP, clumping_cap

    clean = simulate(Scenario(canary_rps=100.0, duration=900.0), 200, 21)
    bursty = simulate(Scenario(canary_rps=100.0, overdispersion=0.5, duration=900.0), 200, 22)
    cap_clean = clumping_cap(clean.xc, clean.xb, clean.nc, clean.nb, clean.t)
    cap_bursty = clumping_cap(bursty.xc, bursty.xb, bursty.nc, bursty.nb, bursty.t)
    # nothing is known about clumping between minutes before a minute has ended
    assert (cap_clean[:, :CLUMPING_FLOOR_BLOCKS] == CLUMPING_PRIOR_CAP).all()
    assert np.median(cap_clean[:, 10]) <= 0.01  # after ten clean minutes: little protection left
    assert np.median(cap_bursty[:, 10]) >= 0.1  # the true rho is ~0.11


@pytest.mark.parametrize("scenario", [
    Scenario(canary_rps=100.0, overdispersion=0.5, duration=900.0),
    Scenario(canary_rps=100.0, overdispersion=0.2, duration=900.0),
    Scenario(canary_rps=10.0, overdispersion=0.5),
], ids=["100rps-cv0.5", "100rps-cv0.2", "10rps-cv0.5"])
def test_false_rollbacks_stay_under_alpha_with_bursty_errors(scenario: Scenario) -> None:
    assert _false_rollbacks(scenario, 300, seed=23) <= LIMIT


def test_bursty_protection_still_catches_a_clean_regression_within_minutes() -> None:
    d = simulate(Scenario(canary_rps=100.0, error_ratio=2.0, duration=600.0), 100, 24)
    hit = first_crossing(error_log_e(d.xc, d.xb, d.nc, d.nb, d.t), math.log(1 / ALPHA))
    assert (hit >= 0).all() and np.median(d.t[hit]) <= 240.0


# -- latency that moves by the minute on one arm -----------------------------------------------


def _latency_false_rollbacks(scenario: Scenario, runs: int, seed: int, *, temper: bool = True) -> int:
    """Rollbacks by the latency e-process with its share of the default judge's alpha (half)."""
    d = simulate(scenario, runs, seed)
    ll = latency_log_e(d.hc, d.hb, d.t, d.bounds, warmup=120.0, temper=temper)
    return int((first_crossing(ll, math.log(2 / ALPHA)) >= 0).sum())


@pytest.mark.parametrize("rps", [10.0, 100.0])
def test_latency_jitter_by_the_minute_is_not_a_regression(rps: float) -> None:
    """Each arm's latency shifted by a random 2% (sd) every minute, no regression: tempered by the
    estimated per-minute dispersion, the latency e-process at its share of the default judge's
    alpha stays under alpha; untempered it does not at 100 req/s (the mechanism matters, not
    luck). The protection is partial: alone, with all of alpha, 2% jitter at 100 req/s rolls back
    ~8% (docs/statistics.md §6)."""
    scenario = Scenario(canary_rps=rps, latency_jitter=0.02, duration=900.0)
    assert _latency_false_rollbacks(scenario, 300, seed=31) <= LIMIT
    if rps == 100.0:
        assert _latency_false_rollbacks(scenario, 300, seed=31, temper=False) > LIMIT


def test_latency_dispersion_grows_with_jitter_and_traffic_and_stays_near_one_when_clean() -> None:
    from analyzer.core.stats.evalue import arm_share
    from analyzer.core.stats.latency import block_dispersion, normal_scores, pooled_past

    def factor(s: Scenario) -> np.ndarray:
        d = simulate(s, 100, 32)
        share, valid = arm_share(d.hc.sum(-1), d.hb.sum(-1))
        z = normal_scores(pooled_past(d.hc, d.hb))
        return block_dispersion(d.hc, d.hb, share, valid, z, d.t)

    late = slice(-6, None)  # the last minute of ten
    clean = factor(Scenario(canary_rps=100.0, duration=600.0))
    jitter = factor(Scenario(canary_rps=100.0, latency_jitter=0.05, duration=600.0))
    slow = factor(Scenario(canary_rps=1.0, latency_jitter=0.05, duration=600.0))
    assert (clean >= 1.0).all() and (jitter >= 1.0).all()
    assert np.median(clean[:, late]) <= 1.5  # ten clean minutes: little tempering left
    assert np.median(jitter[:, late]) >= 10.0  # a 5% jitter at 100 req/s is phi ~ 60
    assert np.median(slow[:, late]) <= 1.2  # at 1 req/s a minute holds too few requests to matter


def test_latency_protection_still_catches_a_steady_regression() -> None:
    """A steady +10% is the same every minute: it is fitted, not taken for jitter."""
    d = simulate(Scenario(canary_rps=10.0, p99_scale=1.1, duration=900.0), 100, 33)
    hit = first_crossing(latency_log_e(d.hc, d.hb, d.t, d.bounds, warmup=120.0), math.log(1 / ALPHA))
    assert (hit >= 0).mean() >= 0.98 and np.median(d.t[hit[hit >= 0]]) <= 420.0


def test_posterior_caps_are_predictable_and_start_cautious() -> None:
    """Block j's cap uses blocks before j only (changing block j and later leaves it unchanged),
    the first block's cap is the prior's `early` quantile, and strong evidence moves it."""
    from analyzer.core.stats.evalue import predictable_upper_quantile

    grid, prior = (0.0, 0.1, 1.0), (0.6, 0.2, 0.2)
    rng = np.random.default_rng(40)
    loglik = rng.normal(size=(3, 5, 8))
    caps = predictable_upper_quantile(loglik, grid, prior, early=0.95, late=0.5, blocks=4.0)
    changed = loglik.copy()
    changed[..., 5:] += rng.normal(size=(3, 5, 3)) * 10
    again = predictable_upper_quantile(changed, grid, prior, early=0.95, late=0.5, blocks=4.0)
    assert np.array_equal(caps[..., :6], again[..., :6]) and not np.array_equal(caps, again)
    assert (caps[..., 0] == 1.0).all()  # prior cdf 0.6, 0.8, 1.0: the 95% quantile is the top
    favour_zero = np.zeros((3, 1, 8))
    favour_zero[1:] = -5.0  # every block says "not 0.1, not 1"
    assert predictable_upper_quantile(favour_zero, grid, prior, early=0.95, late=0.5, blocks=4.0)[0, -1] == 0.0
