"""Per-metric explanations: samples per arm, evidence, effect with interval, traffic still needed."""

from __future__ import annotations

import math

import numpy as np

from analyzer.core.stats.errors import RATIO_GRID, RATIO_WEIGHTS, ratio_estimate
from analyzer.core.stats.kayenta import Classification, Label
from analyzer.core.stats.latency import (
    FAMILY_WEIGHTS,
    LOCATION_GRID,
    histogram_quantile,
    log_spread,
    normal_scores,
    shift_estimate,
)
from analyzer.core.stats.model import Effect, Evidence, MetricReport, MetricSpec, MetricType, Needed
from analyzer.core.stats.power import error_information, needed_requests, tilt_information
from analyzer.core.stats.steps import Arm, Steps
from analyzer.core.stats.text import num, pct, ratio_range, seconds

# Evidence the mixture loses to not knowing the regression's size: log(1 / prior weight).
_ERROR_MIXTURE_COST = math.log(sum(RATIO_WEIGHTS) / RATIO_WEIGHTS[RATIO_GRID.index(2.0)])
_LATENCY_MIXTURE_COST = math.log(len(LOCATION_GRID) / FAMILY_WEIGHTS["location"])


def _judged(steps: Steps, metric: MetricSpec) -> Steps:
    """The steps after the metric's warm-up (what its test looks at)."""
    keep = steps.start >= metric.warmup
    if keep.all():
        return steps
    first = int(np.argmax(keep)) if keep.any() else len(keep)

    def arm(a: Arm) -> Arm:
        return Arm(a.requests[first:], a.errors[first:], None if a.buckets is None else a.buckets[first:])

    values = {k: (c[first:], b[first:]) for k, (c, b) in steps.values.items()}
    return Steps(steps.t[first:], arm(steps.canary), arm(steps.baseline), steps.bounds, values)


def _warmup_note(metric: MetricSpec, steps: Steps) -> str:
    if metric.warmup <= 0:
        return ""
    if steps.t[-1] <= metric.warmup:
        return f"; still in its {metric.warmup:g} s warm-up, not judged yet"
    return f"; the first {metric.warmup:g} s (warm-up) are not judged"


def error_report(steps: Steps, metric: MetricSpec, log_e: float, threshold: float, alpha: float,
                 status: str, want_needed: bool) -> MetricReport:
    data = _judged(steps, metric)
    c, b = data.canary, data.baseline
    cn, bn, ce, be = (float(v.sum()) for v in (c.requests, b.requests, c.errors, b.errors))
    evidence = Evidence("e-value", math.exp(log_e), threshold)
    head = (f"{metric.name}: canary {num(ce)} errors in {num(cn)} requests ({pct(ce / cn if cn else math.nan)}), "
            f"baseline {num(be)} in {num(bn)} ({pct(be / bn if bn else math.nan)})")
    if cn == 0 or bn == 0:
        arm = "canary" if cn == 0 else "baseline"
        return MetricReport(metric.name, metric.type, "no-data", cn, bn,
                            f"{head}: the {arm} received no traffic{_warmup_note(metric, steps)}", evidence)
    est = ratio_estimate(c.errors, b.errors, c.requests, b.requests, threshold)
    level = 1 - 2 / threshold
    effect = Effect("error-rate ratio", est.estimate, est.low, est.high, level)
    ratio_text = (f"ratio x{est.estimate:.3g} ({100 * level:.3g}% confidence sequence "
                  f"{ratio_range(est.low, est.high)})" if not math.isnan(est.estimate) else "no errors in either arm")
    text = f"{head}; {ratio_text}; e-value {num(evidence.value)} (alone it needs {num(threshold)})"
    needed = None
    if want_needed:
        share = cn / (cn + bn)
        rate = (be + 0.5) / (bn + 1.0)
        info = error_information(rate, metric.detect * metric.tolerance, share, metric.tolerance)
        missing = max(0.0, math.log(threshold) - max(log_e, 0.0)) + _ERROR_MIXTURE_COST
        needed = _needed(steps, missing, info, share, metric.detect)
        text += f"; {_needed_text(needed, f'errors x{metric.detect:g}')}"
    return MetricReport(metric.name, metric.type, status, cn, bn, text + _warmup_note(metric, steps),
                        evidence, effect, needed)


def latency_report(steps: Steps, metric: MetricSpec, log_e: float, threshold: float, alpha: float,
                   status: str, want_needed: bool) -> MetricReport:
    data = _judged(steps, metric)
    c, b = data.canary, data.baseline
    if c.buckets is None or b.buckets is None or data.bounds is None:
        return MetricReport(metric.name, metric.type, "no-data", 0.0, 0.0,
                            f"{metric.name}: no latency buckets in the data")
    bounds = data.bounds
    cc, bc = c.buckets.sum(axis=0), b.buckets.sum(axis=0)
    cn, bn = float(cc.sum()), float(bc.sum())
    evidence = Evidence("e-value", math.exp(log_e), threshold)
    if cn == 0 or bn == 0:
        arm = "canary" if cn == 0 else "baseline"
        return MetricReport(metric.name, metric.type, "no-data", cn, bn,
                            f"{metric.name}: the {arm} has no latency observations{_warmup_note(metric, steps)}",
                            evidence)

    def pcts(counts: np.ndarray) -> str:
        return (f"p50 {num(histogram_quantile(0.5, bounds, counts))} s, "
                f"p99 {num(histogram_quantile(0.99, bounds, counts))} s")

    est = shift_estimate(c.buckets, b.buckets, bounds, threshold / 2)
    level = 1 - 2 / threshold
    effect = Effect("latency scale", est.estimate, est.low, est.high, level)
    text = (f"{metric.name}: canary {pcts(cc)} over {num(cn)} requests, baseline {pcts(bc)} over {num(bn)} "
            f"(interpolated in buckets); whole-distribution scale x{est.estimate:.3g} ({100 * level:.3g}% "
            f"confidence sequence "
            f"{ratio_range(est.low, est.high)}); e-value {num(evidence.value)} (alone it needs {num(threshold)})")
    needed = None
    if want_needed:
        pooled = cc + bc + 0.5
        freq = pooled / pooled.sum()
        theta = math.log(metric.detect * metric.tolerance) / float(log_spread(freq, bounds))
        share = cn / (cn + bn)
        info = tilt_information(freq, normal_scores(freq), theta, share)
        missing = max(0.0, math.log(threshold) - max(log_e, 0.0)) + _LATENCY_MIXTURE_COST
        needed = _needed(steps, missing, info, share, metric.detect)
        if steps.t[-1] < metric.warmup:
            needed = Needed(needed.canary_requests, needed.baseline_requests,
                            needed.seconds + metric.warmup - float(steps.t[-1]), needed.detect)
        slower = f"latency {100 * (metric.detect - 1):.3g}% slower"
        text += f"; {_needed_text(needed, slower)}"
    return MetricReport(metric.name, metric.type, status, cn, bn, text + _warmup_note(metric, steps),
                        evidence, effect, needed)


def _needed(steps: Steps, missing: float, info: float, share: float, detect: float) -> Needed:
    more = needed_requests(missing, info)
    total = float(steps.canary.requests.sum() + steps.baseline.requests.sum())
    elapsed = float(steps.t[-1])
    rate = total / elapsed if elapsed > 0 else 0.0
    wait = more / rate if rate > 0 else math.inf
    return Needed(more * share, more * (1 - share), wait, detect)


def _needed_text(needed: Needed, what: str) -> str:
    if needed.canary_requests <= 0:
        return f"enough traffic to see {what}"
    return (f"to see {what} it needs about {num(round(needed.canary_requests))} more canary and "
            f"{num(round(needed.baseline_requests))} more baseline requests "
            f"(~{seconds(needed.seconds)} at the current rate)")


def fixed_report(metric: MetricSpec, result: Classification, alpha_share: float, confidence: float,
                 status: str) -> MetricReport:
    """A metric judged Kayenta-style on per-interval points."""
    unit = {MetricType.ERROR_RATE: "per-interval error rates", MetricType.LATENCY: "per-interval p99s (s)",
            MetricType.SERIES: "per-interval readings"}[metric.type]
    head = f"{metric.name}: {result.canary_points} canary and {result.baseline_points} baseline {unit}"
    if result.label is Label.NODATA:
        return MetricReport(metric.name, metric.type, "no-data", result.canary_points, result.baseline_points,
                            f"{head}: no data in an arm (Kayenta: NoData)")
    if result.result is None:
        return MetricReport(metric.name, metric.type, status, result.canary_points, result.baseline_points,
                            f"{head}: identical or constant samples, {result.label.value}")
    r = result.result
    evidence = Evidence("p-value", r.p_greater, alpha_share)
    effect = Effect("shift (canary - baseline)", r.estimate, r.low, r.high, confidence)
    text = (f"{head}: Hodges-Lehmann shift {num(r.estimate)} ({100 * confidence:g}% CI {num(r.low)} to "
            f"{num(r.high)}), mean ratio {num(result.ratio)}, one-sided p {num(r.p_greater)}: "
            f"{result.label.value}")
    return MetricReport(metric.name, metric.type, status, result.canary_points, result.baseline_points, text,
                        evidence, effect)
