"""Information per request, the two-sample SPRT bound, and "how much more traffic is needed".

A test that may only use the arm label of each outcome class (error / bucket), as ours do,
gains on average ``I = sum_k m_k d(pi_k || rho)`` nats per request of both arms, where ``m_k`` is
the class frequency and ``pi_k`` the canary share of class k under the alternative. No test with
false-positive rate alpha and power 1-beta can need fewer than ``d(1-beta || alpha) / I``
requests on average (Wald & Wolfowitz): the *two-sample bound* of the benchmark. Our own
estimate of the traffic still needed divides the evidence still missing by the same ``I``.
"""

from __future__ import annotations

import numpy as np

from analyzer.core.stats.steps import Array


def bernoulli_kl(a: float | Array, b: float | Array) -> Array:
    """d(a || b) = a ln(a/b) + (1-a) ln((1-a)/(1-b)), with 0 ln 0 = 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(a > 0, a * np.log(a / b), 0.0)
        t2 = np.where(a < 1, (1 - a) * np.log((1 - a) / (1 - b)), 0.0)
    return np.asarray(t1 + t2, dtype=np.float64)


def label_information(freq_canary: Array, freq_baseline: Array, share: float) -> float:
    """Nats per request (both arms) that arm labels carry, given each arm's class frequencies."""
    fc, fb = np.asarray(freq_canary, dtype=np.float64), np.asarray(freq_baseline, dtype=np.float64)
    mix = share * fc + (1 - share) * fb
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.where(mix > 0, share * fc / mix, share)
    return float((mix * bernoulli_kl(pi, share)).sum())


def sprt_bound_requests(information: float, alpha: float = 0.05, beta: float = 0.05) -> float:
    """Expected requests (both arms) any test needs: d(1-beta || alpha) / I."""
    return float(bernoulli_kl(1 - beta, alpha)) / information if information > 0 else float("inf")


def error_information(rate: float, ratio: float, share: float, tolerance: float = 1.0) -> float:
    """Nats per request (both arms) for "canary errors ``ratio`` x baseline" against ``tolerance`` x.

    Conditional on an error, the label is the canary's with probability q(ratio) instead of
    q(tolerance): ``events per request x d(q1 || q0)``.
    """
    q1 = ratio * share / (ratio * share + 1 - share)
    q0 = tolerance * share / (tolerance * share + 1 - share)
    events = rate * (share * ratio + (1 - share))
    return float(events * bernoulli_kl(q1, q0))


def tilt_information(freq: Array, score: Array, theta: float, share: float) -> float:
    """Nats per request (both arms) when the canary's buckets are ``freq`` tilted by ``theta * score``."""
    raw = np.exp(theta * score)
    tilted = freq * raw / float((freq * raw).sum())
    return label_information(tilted, freq, share)


def needed_requests(missing_nats: float, information: float) -> float:
    """More requests (both arms) so that the expected evidence gains ``missing_nats``."""
    if missing_nats <= 0:
        return 0.0
    return missing_nats / information if information > 0 else float("inf")
