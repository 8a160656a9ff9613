"""Mann-Whitney (Kayenta/R port) against scipy, R's published output and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from analyzer.core.stats.kayenta import Label, classify, score
from analyzer.core.stats.mannwhitney import AllTiedError, _statistic, mann_whitney, mann_whitney_batch


def test_p_values_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = np.round(rng.normal(0.3, 1, rng.integers(5, 40)), 1)  # rounding makes ties
        y = np.round(rng.normal(0.0, 1, rng.integers(5, 40)), 1)
        result = mann_whitney(x, y)
        assert result.p_value == pytest.approx(mannwhitneyu(x, y, method="asymptotic").pvalue, rel=1e-12)
        greater = mannwhitneyu(x, y, method="asymptotic", alternative="greater").pvalue
        assert result.p_greater == pytest.approx(greater, rel=1e-12)


@pytest.mark.parametrize(("x", "y", "p"), [
    # R: wilcox.test(x, y) -> "W = 51.5, p-value = 0.5966" (normal approximation, ties, continuity)
    ([1, 5, 9, 24, 56, 21, 3, 7, 21, 4], [12, 15, 5, 9, 9, 14, 56, 22, 3, 7, 32, 5], 0.5966),
    # R: same x against wide y -> "W = 0, p-value = 0.001364"
    ([1, 5, 9, 24, 56, 21, 3, 7, 21, 4], [1233, 4356, 987, 39999, 1111, 200000], 0.001364),
])
def test_p_value_matches_published_r_output(x: list[float], y: list[float], p: float) -> None:
    assert mann_whitney(np.array(x, float), np.array(y, float)).p_value == pytest.approx(p, abs=5e-5)


def _scan(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """Brute force: the first mu on a fine grid where the (decreasing) statistic is <= target."""
    grid = np.round(np.arange(-4, 4, 0.01), 10)
    values = np.array([_statistic(x, y, float(m)) for m in grid])
    return float(grid[np.argmax(values <= target)])


def test_interval_and_estimate_are_the_roots_of_the_rank_statistic() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(1.0, 1, 30), 1)
    y = np.round(rng.normal(0.4, 1, 25), 1)
    r = mann_whitney(x, y, confidence=0.95)
    # On a 0.01 grid (the data are on a 0.1 grid) the first point past each root is the root.
    assert r.low == pytest.approx(_scan(x, y, 1.959964), abs=1e-9)
    assert r.high == pytest.approx(_scan(x, y, -1.959964), abs=1e-9)
    assert r.estimate == pytest.approx(np.median(np.subtract.outer(x, y)), abs=0.1)
    assert r.low < r.estimate < r.high


def test_batch_equals_scalar_on_tied_data() -> None:
    rng = np.random.default_rng(11)
    x = rng.poisson(1.0, (40, 30)) / 60.0  # per-minute error rates: many tied values, many zeros
    y = rng.poisson(0.8, (40, 30)) / 60.0
    low, high, est = mann_whitney_batch(x, y)
    for i in range(40):
        if np.ptp(np.r_[x[i], y[i]]) == 0:
            continue
        r = mann_whitney(x[i], y[i])
        assert (r.low, r.high, r.estimate) == pytest.approx((low[i], high[i], est[i]), abs=1e-12)


def test_all_tied_has_no_interval() -> None:
    with pytest.raises(AllTiedError):
        mann_whitney(np.zeros(5), np.zeros(5))


def test_kayenta_classification_rules() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(100, 5, 30)
    assert classify(base + 20, base).label is Label.HIGH
    assert classify(base - 20, base).label is Label.PASS  # direction "increase" ignores decreases
    assert classify(base - 20, base, direction="either").label is Label.LOW
    assert classify(base, base.copy()).label is Label.PASS  # identical samples
    assert classify(np.array([np.nan, np.nan]), base).label is Label.NODATA  # NaN removed -> empty
    # Kayenta's blind spot, kept on purpose: a few errors against tied zeros is not High.
    zeros = np.zeros(30)
    some = zeros.copy()
    some[:4] = 0.02
    assert classify(some, zeros).label is Label.PASS
    assert score([Label.PASS, Label.HIGH, Label.NODATA]) == 50.0
    assert score([Label.NODATA]) is None
