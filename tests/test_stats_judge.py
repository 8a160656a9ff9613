"""The core judge: decisions, deciding metric, explanations, methods, and what no data means."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analyzer.core.stats import Arm, Decision, JudgeSpec, Method, MetricSpec, MetricType, Steps, judge
from analyzer.core.stats.steps import arm_increments
from analyzer.judge.simulate import Scenario, SimData, simulate

ERRORS = MetricSpec.of("errors", MetricType.ERROR_RATE)
LATENCY = MetricSpec.of("latency", MetricType.LATENCY)
SPEC = JudgeSpec(metrics=(ERRORS, LATENCY))


def steps_of(d: SimData, run: int = 0, *, cut: float | None = None) -> Steps:
    keep = d.t <= (cut if cut is not None else d.t[-1])
    return Steps(d.t[keep], Arm(d.nc[run, keep], d.xc[run, keep], d.hc[run, keep]),
                 Arm(d.nb[run, keep], d.xb[run, keep], d.hb[run, keep]), d.bounds)


def test_error_regression_fails_early_and_explains_itself() -> None:
    v = judge(steps_of(simulate(Scenario(canary_rps=10, error_ratio=5), 1, 3)), SPEC)
    assert v.decision is Decision.FAIL and v.metric == "errors"
    assert v.decided_at is not None and v.decided_at < 300
    report = next(m for m in v.metrics if m.name == "errors")
    assert report.status == "regression"
    assert report.canary_samples > 0 and report.baseline_samples > 0
    assert report.evidence is not None and report.evidence.kind == "e-value"
    assert report.effect is not None and report.effect.low > 1.0  # the interval excludes "no worse"
    assert "roll back" in v.reasons[0] and "errors" in v.reasons[0]


def test_latency_regression_fails_with_latency_as_deciding_metric() -> None:
    v = judge(steps_of(simulate(Scenario(canary_rps=10, p99_scale=1.25), 1, 4)), SPEC)
    assert v.decision is Decision.FAIL and v.metric == "latency"
    assert v.decided_at is not None and v.decided_at > LATENCY.warmup  # the warm-up is not judged


def test_tail_only_regression_is_caught() -> None:
    v = judge(steps_of(simulate(Scenario(canary_rps=100, p99_tail=1.25), 1, 4)), SPEC)
    assert v.decision is Decision.FAIL and v.metric == "latency"


def test_healthy_canary_passes_at_the_horizon_only() -> None:
    d = simulate(Scenario(canary_rps=10), 1, 8)
    early = judge(steps_of(d, cut=600), SPEC)
    assert early.decision is Decision.INCONCLUSIVE and early.decided_at is None
    assert "before the horizon" in early.reasons[0]
    needed = [m.needed for m in early.metrics]
    assert all(n is not None and n.canary_requests > 0 and math.isfinite(n.seconds) for n in needed)
    final = judge(steps_of(d), SPEC)
    assert final.decision is Decision.PASS and final.decided_at == 1800


@pytest.mark.parametrize("canary_rps", [0.0, 0.01])
def test_no_or_little_traffic_is_never_a_pass(canary_rps: float) -> None:
    v = judge(steps_of(simulate(Scenario(canary_rps=canary_rps, baseline_rps=10), 1, 2)), SPEC)
    assert v.decision is Decision.INCONCLUSIVE
    assert "no traffic" in v.reasons[0] or "fewer than min_samples" in v.reasons[0]


def test_latency_without_buckets_is_inconclusive_not_pass() -> None:
    d = simulate(Scenario(canary_rps=10), 1, 8)
    s = Steps(d.t, Arm(d.nc[0], d.xc[0]), Arm(d.nb[0], d.xb[0]))
    v = judge(s, SPEC)
    assert v.decision is Decision.INCONCLUSIVE and "latency has no data" in v.reasons[0]
    assert judge(s, JudgeSpec(metrics=(ERRORS,))).decision is Decision.PASS


def test_counter_reset_is_not_a_regression() -> None:
    d = simulate(Scenario(canary_rps=100), 1, 9)
    req, err = np.cumsum(d.nc[0]), np.cumsum(d.xc[0])
    req[90:] -= req[89]  # the canary pod restarts at t=900 s: counters start again from 0
    err[90:] -= err[89]
    cr, ce, _ = arm_increments(req, err)
    assert (cr >= 0).all() and (ce >= 0).all() and cr[90] == 0  # the restart step carries no data
    s = Steps(d.t, Arm(cr, ce), Arm(d.nb[0], d.xb[0]))
    assert judge(s, JudgeSpec(metrics=(ERRORS,))).decision is Decision.PASS


def test_data_after_the_horizon_is_ignored() -> None:
    d = simulate(Scenario(canary_rps=10, error_ratio=5, duration=2400), 1, 3)
    d_late = simulate(Scenario(canary_rps=10, duration=2400), 1, 3)
    # healthy for 30 minutes, broken afterwards: the verdict was due at the horizon
    late = SimData(d.t, d.nc, d.nb, np.where(d.t > 1800, d.xc, d_late.xc), d.xb, d.hc, d.hb, d.bounds)
    v = judge(steps_of(late), JudgeSpec(metrics=(ERRORS,)))
    assert v.decision is Decision.PASS and v.decided_at == 1800


def test_mann_whitney_method_decides_only_at_the_horizon() -> None:
    spec = JudgeSpec(metrics=(ERRORS, LATENCY), method=Method.MANN_WHITNEY)
    d = simulate(Scenario(canary_rps=100, error_ratio=2), 1, 5)
    assert judge(steps_of(d, cut=900), spec).decision is Decision.INCONCLUSIVE
    v = judge(steps_of(d), spec)
    assert v.decision is Decision.FAIL and v.decided_at == 1800 and v.metric == "errors"
    report = next(m for m in v.metrics if m.name == "errors")
    assert report.evidence is not None and report.evidence.kind == "p-value"


def test_series_metric_is_judged_at_the_horizon() -> None:
    d = simulate(Scenario(canary_rps=10), 1, 5)
    rng = np.random.default_rng(1)
    gpu_c, gpu_b = 0.8 + rng.normal(0, 0.02, len(d.t)), 0.5 + rng.normal(0, 0.02, len(d.t))
    s = Steps(d.t, Arm(d.nc[0], d.xc[0]), Arm(d.nb[0], d.xb[0]), values={"gpu": (gpu_c, gpu_b)})
    spec = JudgeSpec(metrics=(ERRORS, MetricSpec.of("gpu", MetricType.SERIES)))
    v = judge(s, spec)
    assert v.decision is Decision.FAIL and v.metric == "gpu" and v.decided_at == 1800


def test_verdict_json_is_strict() -> None:
    d = simulate(Scenario(canary_rps=10, error_ratio=5), 1, 3)
    out = judge(steps_of(d), SPEC).to_json("r1", details=True)
    text = json.dumps(out, allow_nan=False)  # raises on NaN / Infinity
    assert set(out) == {"run", "decision", "decided_at", "metric", "reasons", "details"}
    assert json.loads(text)["details"][0]["effect"]["name"] == "error-rate ratio"
