"""Kayenta-style fixed-horizon classification (NetflixACAJudge + MannWhitneyClassifier) and score.

For users who want Kayenta's behaviour: per-interval points of each arm (one error rate or one
p99 per minute, not per request), NaN points removed, then Mann-Whitney with a 98% interval on
the Hodges-Lehmann shift. A metric is High when the lower bound is above 25% of |estimate| and
the mean ratio is at least ``allowed_increase`` (or undefined); Low symmetrically; else Pass;
an empty arm is NoData. Score: 100 x Pass / (Pass + High + Low), NoData not counted.

It decides only at its horizon: looking at it repeatedly would inflate its false-positive rate
(that is what the sequential judge is for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analyzer.core.stats.mannwhitney import AllTiedError, MannWhitneyResult, mann_whitney
from analyzer.core.stats.steps import Array

_NOISE_SEED = 20170101  # deterministic noise for the constant-sample rule: same input, same verdict


class Label(StrEnum):
    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "NoData"


@dataclass(frozen=True)
class Classification:
    label: Label
    canary_points: int
    baseline_points: int
    ratio: float  # mean(canary) / mean(baseline); NaN when undefined
    result: MannWhitneyResult | None  # None when no test was needed (no data, identical samples)


def classify(
    canary: Array,
    baseline: Array,
    *,
    direction: str = "increase",
    confidence: float = 0.98,
    band: float = 0.25,
    allowed_increase: float = 1.0,
    allowed_decrease: float = 1.0,
) -> Classification:
    """Kayenta's ``MannWhitneyClassifier.classify`` with ``nanStrategy: remove``."""
    x = np.asarray(canary, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return Classification(Label.NODATA, len(x), len(y), float("nan"), None)
    ratio = _mean_ratio(x, y)
    if np.array_equal(np.sort(x), np.sort(y)) or np.ptp(np.r_[x, y]) == 0:
        return Classification(Label.PASS, len(x), len(y), ratio, None)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        # Kayenta adds tiny Gaussian noise when each side is constant, so ranks are defined.
        rng = np.random.default_rng(_NOISE_SEED)
        x = x + rng.normal(0.0, 1.0, len(x)) * 1e-5 * np.abs(x)
        y = y + rng.normal(0.0, 1.0, len(y)) * 1e-5 * np.abs(y)
    try:
        result = mann_whitney(x, y, confidence)
    except AllTiedError:
        return Classification(Label.PASS, len(x), len(y), ratio, None)
    critical = band * abs(result.estimate)
    up = direction in ("increase", "either")
    down = direction in ("decrease", "either")
    if up and result.low > critical and (np.isnan(ratio) or ratio >= allowed_increase):
        return Classification(Label.HIGH, len(x), len(y), ratio, result)
    if down and result.high < -critical and (np.isnan(ratio) or ratio <= allowed_decrease):
        return Classification(Label.LOW, len(x), len(y), ratio, result)
    return Classification(Label.PASS, len(x), len(y), ratio, result)


def _mean_ratio(x: Array, y: Array) -> float:
    mx, my = float(x.mean()), float(y.mean())
    return float("nan") if mx == 0 or my == 0 else mx / my


def score(labels: Sequence[Label]) -> float | None:
    """Kayenta's summary score with one metric per group and equal weights; None if nothing is scored."""
    scored = [lb for lb in labels if lb is not Label.NODATA]
    if not scored:
        return None
    return round(100.0 * sum(lb is Label.PASS for lb in scored) / len(scored), 2)
