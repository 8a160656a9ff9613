"""The judge: steps of one analysis + a JudgeSpec -> an explained Verdict.

Sequential method: roll back ("fail") at the first step where the rollout's averaged e-process
reaches 1/alpha; "pass" at the horizon if it never did and every metric has its minimum samples;
otherwise "inconclusive" -- never a pass without data. Mann-Whitney method: Kayenta's judgement
once, at the horizon. Data after the horizon is not looked at.
"""

from __future__ import annotations

import math

import numpy as np

from analyzer.core.stats.evalue import first_crossing
from analyzer.core.stats.fixed import classify_metric
from analyzer.core.stats.kayenta import Classification, Label, score
from analyzer.core.stats.model import (
    Decision,
    JudgeSpec,
    Method,
    MetricReport,
    MetricSpec,
    MetricType,
    Verdict,
)
from analyzer.core.stats.reports import error_report, fixed_report, latency_report
from analyzer.core.stats.sequential import SequentialPaths, has_data, sequential_paths
from analyzer.core.stats.steps import Steps
from analyzer.core.stats.text import num, secs

_BAD = {"increase": (Label.HIGH,), "decrease": (Label.LOW,), "either": (Label.HIGH, Label.LOW)}


def judge(steps: Steps, spec: JudgeSpec) -> Verdict:
    if len(steps.t) == 0:
        return Verdict(Decision.INCONCLUSIVE, None, None, ("no data: the run has no observations",))
    reached = np.flatnonzero(steps.t >= spec.horizon)
    horizon = int(reached[0]) if len(reached) else None
    if spec.method is Method.MANN_WHITNEY:
        return _fixed_horizon(steps, spec, horizon)
    return _sequential(steps, spec, horizon)


def _samples(steps: Steps, metric: MetricSpec) -> tuple[float, float]:
    steps = steps.view(metric.name)
    keep = steps.start >= metric.warmup
    c, b = steps.canary, steps.baseline
    if metric.type is MetricType.LATENCY:
        if c.buckets is None or b.buckets is None:
            return 0.0, 0.0
        return float(c.buckets[keep].sum()), float(b.buckets[keep].sum())
    if metric.type is MetricType.SERIES:
        values = steps.values.get(metric.name)
        if values is None:
            return 0.0, 0.0
        return float((~np.isnan(values[0][keep])).sum()), float((~np.isnan(values[1][keep])).sum())
    return float(c.requests[keep].sum()), float(b.requests[keep].sum())


def _metric_report(steps: Steps, metric: MetricSpec, paths: SequentialPaths, index: int, status: str,
                   alpha: float, want_needed: bool) -> MetricReport:
    log_e = float(paths.log_e[metric.name][index])
    threshold = paths.metric_threshold(metric.name)
    build = error_report if metric.type is MetricType.ERROR_RATE else latency_report
    return build(steps.view(metric.name), metric, log_e, threshold, alpha, status, want_needed)


def _sequential(steps: Steps, spec: JudgeSpec, horizon: int | None) -> Verdict:
    paths = sequential_paths(steps, spec)
    end = horizon if horizon is not None else len(steps.t) - 1
    seq = [m for m in spec.metrics if paths is not None and m.name in paths.log_e]
    crossed = -1
    if paths is not None:
        crossed = int(first_crossing(paths.combined[: end + 1], paths.log_threshold))
    if crossed >= 0 and paths is not None:
        return _rollback(steps.upto(crossed), spec, paths, crossed, seq)
    index = end
    at = steps.upto(index)
    decided = horizon is not None
    reports = [] if paths is None else [
        _metric_report(at, m, paths, index, "pending", spec.alpha, want_needed=not decided) for m in seq]
    fixed = [m for m in spec.metrics if m.type is MetricType.SERIES]
    shares = spec.weights()
    failed: list[str] = []
    for m in fixed:
        share = spec.alpha * shares[m.name]
        conf = 1 - 2 * share
        result = classify_metric(at, m, spec.interval, conf) if decided else None
        if result is None:
            reports.append(MetricReport(m.name, m.type, "pending", *_samples(at, m),
                                        f"{m.name}: a fixed-horizon metric, judged at the horizon"))
            continue
        bad = result.label in _BAD.get(m.direction, (Label.HIGH,))
        reports.append(fixed_report(m, result, share, conf, "regression" if bad else "no-regression"))
        if bad:
            failed.append(m.name)
    evidence = math.exp(float(paths.combined[index])) if paths is not None else 0.0
    threshold = 1 / paths.alpha if paths is not None else math.inf
    state = f"rollout evidence {num(evidence)} below {num(threshold)} (1/alpha)"
    texts = tuple(r.text for r in reports)
    t = float(steps.t[index])
    if failed:
        return Verdict(Decision.FAIL, t, failed[0],
                       (f"roll back at the horizon ({secs(t)}): {failed[0]} is worse than the baseline",) + texts,
                       tuple(reports))
    no_traffic = paths is not None and float(at.canary.requests.sum()) == 0
    if not decided:
        why = "the canary received no traffic; " if no_traffic else ""
        return Verdict(Decision.INCONCLUSIVE, None, None,
                       (f"no decision yet: {why}data ends at {secs(t)}, before the horizon "
                        f"({spec.horizon:g} s); {state}",) + texts, tuple(reports))
    short = _short_of_samples(at, spec)
    if no_traffic or short:
        why = "the canary received no traffic" if no_traffic else "; ".join(short)
        return Verdict(Decision.INCONCLUSIVE, None, None,
                       (f"inconclusive at the horizon ({secs(t)}): {why}",) + texts, tuple(reports))
    final = [MetricReport(r.name, r.type, "no-regression" if r.status == "pending" else r.status,
                          r.canary_samples, r.baseline_samples, r.text, r.evidence, r.effect, r.needed)
             for r in reports]
    return Verdict(Decision.PASS, t, None, (f"pass at the horizon ({secs(t)}): no regression; {state}",) + texts,
                   tuple(final))


def _short_of_samples(steps: Steps, spec: JudgeSpec) -> list[str]:
    short = []
    for m in spec.metrics:
        if not has_data(steps, m):
            short.append(f"{m.name} has no data")
            continue
        canary, baseline = _samples(steps, m)
        if min(canary, baseline) < m.min_samples:
            short.append(f"{m.name} has {num(canary)} canary and {num(baseline)} baseline samples, "
                         f"fewer than min_samples {m.min_samples}")
    return short


def _rollback(at: Steps, spec: JudgeSpec, paths: SequentialPaths, index: int, seq: list[MetricSpec]) -> Verdict:
    contributions = {m.name: paths.weights[m.name] * math.exp(float(paths.log_e[m.name][index])) for m in seq}
    decider = max(contributions, key=lambda k: contributions[k])
    reports = []
    for m in seq:
        alone = float(paths.log_e[m.name][index]) >= math.log(paths.metric_threshold(m.name))
        status = "regression" if m.name == decider or alone else "pending"
        reports.append(_metric_report(at, m, paths, index, status, spec.alpha, want_needed=False))
    t = float(at.t[-1])
    evidence = math.exp(float(paths.combined[index]))
    shared = f"alpha {spec.alpha:g} shared by {len(spec.metrics)} metrics" if len(spec.metrics) > 1 \
        else f"alpha {spec.alpha:g}"
    summary = (f"roll back at {secs(t)}: {decider} is worse than the baseline; rollout evidence "
               f"{num(evidence)} reached {num(1 / paths.alpha)} (1/alpha, {shared})")
    return Verdict(Decision.FAIL, t, decider, (summary,) + tuple(r.text for r in reports), tuple(reports))


def _fixed_horizon(steps: Steps, spec: JudgeSpec, horizon: int | None) -> Verdict:
    if horizon is None:
        t = float(steps.t[-1])
        return Verdict(Decision.INCONCLUSIVE, None, None,
                       (f"no decision yet: the Mann-Whitney judge decides at the horizon ({spec.horizon:g} s); "
                        f"data ends at {secs(t)}",))
    at = steps.upto(horizon)
    t = float(at.t[-1])
    conf = spec.confidence or max(0.98, 1 - 2 * spec.alpha / len(spec.metrics))
    results: list[tuple[MetricSpec, Classification]] = [
        (m, classify_metric(at, m, spec.interval, conf)) for m in spec.metrics]
    reports = tuple(fixed_report(m, r, spec.alpha / len(spec.metrics), conf,
                                 "regression" if r.label in (Label.HIGH, Label.LOW) else "no-regression")
                    for m, r in results)
    texts = tuple(r.text for r in reports)
    labels = [r.label for _, r in results]
    value = score(labels)
    nodata = sum(lb is Label.NODATA for lb in labels)
    if value is None or nodata * 2 >= len(labels):
        return Verdict(Decision.INCONCLUSIVE, None, None,
                       (f"inconclusive at the horizon ({secs(t)}): {nodata} of {len(labels)} metrics have no data",)
                       + texts, reports)
    if value < spec.marginal_score:
        worst, label = next((m.name, r.label) for m, r in results if r.label in (Label.HIGH, Label.LOW))
        return Verdict(Decision.FAIL, t, worst,
                       (f"roll back at the horizon ({secs(t)}): score {value:g} below marginal "
                        f"{spec.marginal_score:g}; {worst} is {label.value}",) + texts, reports)
    short = _short_of_samples(at, spec)
    if value < spec.pass_score or short or float(at.canary.requests.sum()) == 0:
        why = "; ".join(short) if short else f"score {value:g} is marginal (pass needs {spec.pass_score:g})"
        return Verdict(Decision.INCONCLUSIVE, None, None, (f"inconclusive at the horizon ({secs(t)}): {why}",) + texts,
                       reports)
    return Verdict(Decision.PASS, t, None, (f"pass at the horizon ({secs(t)}): score {value:g}",) + texts, reports)
