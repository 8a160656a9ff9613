"""What a judgement is asked (JudgeSpec, MetricSpec) and what it answers (Verdict, MetricReport)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class MetricType(StrEnum):
    ERROR_RATE = "error-rate"
    LATENCY = "latency"
    SERIES = "series"


class Method(StrEnum):
    SEQUENTIAL = "sequential"
    MANN_WHITNEY = "mann-whitney"


class Decision(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


# Defaults per metric type. Latency skips the first two minutes: a cold canary (JIT, caches,
# lazy model loading) is slower while it warms up, and no valid test can tell that apart from a
# regression while it lasts (docs/statistics.md). Errors are judged from the first request.
DEFAULT_WARMUP = {MetricType.ERROR_RATE: 0.0, MetricType.LATENCY: 120.0, MetricType.SERIES: 0.0}
# The regression size a "more traffic needed" estimate is for: errors x2, latency 10% slower.
DEFAULT_DETECT = {MetricType.ERROR_RATE: 2.0, MetricType.LATENCY: 1.1, MetricType.SERIES: 1.1}
DEFAULT_MIN_SAMPLES = {MetricType.ERROR_RATE: 100, MetricType.LATENCY: 100, MetricType.SERIES: 10}


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a judgement.

    ``tolerance``: the canary may be this many times worse before it counts as a regression
    (error-rate ratio; latency scale). ``min_samples``: requests (error-rate), histogram
    observations (latency) or points (series) each arm needs before a pass. ``warmup``: seconds
    from the start that are not judged. ``weight``: share of the rollout's alpha.
    ``direction``: for series metrics, which way is bad (increase, decrease, either).
    """

    name: str
    type: MetricType
    tolerance: float = 1.0
    min_samples: int = 100
    warmup: float = 0.0
    weight: float = 1.0
    detect: float = 2.0
    direction: str = "increase"

    @classmethod
    def of(cls, name: str, type: MetricType, **overrides: Any) -> MetricSpec:
        """A spec with the type's defaults, then ``overrides`` (None values are ignored)."""
        base = cls(name, type, warmup=DEFAULT_WARMUP[type], detect=DEFAULT_DETECT[type],
                   min_samples=DEFAULT_MIN_SAMPLES[type])
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class JudgeSpec:
    """A judgement: metrics, the rollout's false-rollback budget ``alpha``, the ``horizon`` (s).

    ``method``: sequential (anytime-valid, decides as soon as the evidence suffices) or
    mann-whitney (Kayenta-style, decides at the horizon on per-``interval`` points).
    """

    metrics: tuple[MetricSpec, ...]
    alpha: float = 0.05
    horizon: float = 1800.0
    method: Method = Method.SEQUENTIAL
    interval: float = 60.0
    confidence: float | None = None
    pass_score: float = 95.0
    marginal_score: float = 75.0

    def weights(self) -> dict[str, float]:
        """Each metric's share of alpha (weights normalised to sum to 1)."""
        total = sum(m.weight for m in self.metrics)
        return {m.name: m.weight / total for m in self.metrics}


@dataclass(frozen=True)
class Evidence:
    kind: str  # "e-value" or "p-value"
    value: float
    threshold: float  # e-value: fail at or above; p-value: fail at or below


@dataclass(frozen=True)
class Effect:
    name: str  # "error-rate ratio", "latency scale", "shift"
    estimate: float
    low: float
    high: float
    level: float  # coverage, e.g. 0.95


@dataclass(frozen=True)
class Needed:
    """More traffic needed to see a regression of ``detect`` size, and at the current rate how long."""

    canary_requests: float
    baseline_requests: float
    seconds: float
    detect: float


@dataclass(frozen=True)
class MetricReport:
    name: str
    type: MetricType
    status: str  # regression | no-regression | not-enough-data | no-data | pending
    canary_samples: float
    baseline_samples: float
    text: str
    evidence: Evidence | None = None
    effect: Effect | None = None
    needed: Needed | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "type": self.type.value, "status": self.status,
            "samples": {"canary": _num(self.canary_samples), "baseline": _num(self.baseline_samples)},
            "text": self.text,
        }
        if self.evidence is not None:
            out["evidence"] = {"kind": self.evidence.kind, "value": _num(self.evidence.value),
                               "threshold": _num(self.evidence.threshold)}
        if self.effect is not None:
            e = self.effect
            out["effect"] = {"name": e.name, "estimate": _num(e.estimate), "low": _num(e.low),
                             "high": _num(e.high), "level": e.level}
        if self.needed is not None:
            n = self.needed
            out["needed"] = {"canary_requests": _num(n.canary_requests),
                             "baseline_requests": _num(n.baseline_requests),
                             "seconds": _num(n.seconds), "detect": n.detect}
        return out


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    decided_at: float | None
    metric: str | None
    reasons: tuple[str, ...]
    metrics: tuple[MetricReport, ...] = field(default=())

    def to_json(self, run: Any, details: bool = False) -> dict[str, Any]:
        """The pinned output object; ``details`` adds the structured per-metric reports."""
        out: dict[str, Any] = {
            "run": run, "decision": self.decision.value,
            "decided_at": _num(self.decided_at) if self.decided_at is not None else None,
            "metric": self.metric, "reasons": list(self.reasons),
        }
        if details:
            out["details"] = [m.to_json() for m in self.metrics]
        return out


def _num(x: float) -> float | int | None:
    """JSON-safe number: integers stay integers; NaN and infinities become null (strict JSON)."""
    if x is None or not math.isfinite(x):
        return None
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)
