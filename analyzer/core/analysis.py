"""The AnalysisRun state machine (argo-semantics.md §5–§11), pure.

One reconcile is split in two so the I/O stays outside:
``plan`` decides (from spec, status and ``now``) which metrics are due, after argument
resolution and validation; the caller takes those measurements with its providers; ``apply``
folds them in, assesses metric and run phases, trims history and says when to wake next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from analyzer.core.args import Arg, ArgError, resolve_metric
from analyzer.core.metric import Metric, SpecInvalid, build_metrics
from analyzer.core.model import Measurement, MetricResult, Phase, RunStatus, Summary, is_worse

ERROR_RETRY = 10.0  # seconds; Argo's DefaultErrorRetryInterval
DEFAULT_RETENTION = 10
SECRET_PLACEHOLDER = "temp-for-secret"
REDACTED = "*****"

# secret name -> key -> value; None when no secret store is reachable (e.g. simulation).
Secrets = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class RunSpec:
    metrics: tuple[Mapping[str, Any], ...]
    args: tuple[Arg, ...] = ()
    dry_run: tuple[str, ...] = ()
    retention: tuple[tuple[str, int], ...] = ()
    terminate: bool = False
    # Divides every wait (interval, initialDelay, error retry). 1 is Argo; demos and tests use more.
    time_scale: float = 1.0


@dataclass
class Plan:
    metrics: list[Metric] = field(default_factory=list)
    due: list[Metric] = field(default_factory=list)  # resolved with secrets, ready to measure
    terminating: bool = False
    dry_run: frozenset[str] = frozenset()
    error: str | None = None
    secret_values: tuple[str, ...] = ()
    time_scale: float = 1.0
    retention: dict[str, int] = field(default_factory=dict)  # metric -> limit of its last matching rule


_RE2_UNSUPPORTED = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?P=", "(?(")


def _go_regex(pattern: str) -> str | None:
    """The Python spelling of a Go RE2 pattern, or None where RE2 would reject it (lookaround,
    backreferences, ``\\Z``...). RE2's end-of-text ``\\z`` is Python's ``\\Z``."""
    if any(tok in pattern for tok in _RE2_UNSUPPORTED):
        return None
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt in "123456789Z":
                return None
            out.append("\\Z" if nxt == "z" else pattern[i:i + 2])
            i += 2
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def _regex_matches(pattern: str, name: str) -> bool:
    """Go's ``regexp.MatchString``: unanchored; an invalid pattern (e.g. a bare "*") matches nothing."""
    translated = _go_regex(pattern)
    if translated is None:
        return False
    try:
        return re.search(translated, name) is not None
    except re.error:
        return False


def _arg_pairs(args: tuple[Arg, ...], secrets: Secrets | None, *, for_measurement: bool
               ) -> list[tuple[str, str | None]]:
    """(name, value) per run arg, in order; None is "no value" (Argo: ``argument "x" was not supplied``).

    Without ``for_measurement`` this is ``getResolvedMetricsWithoutSecrets``: a secretKeyRef arg
    is the dummy ``temp-for-secret``. For a measurement the secret is read (``resolveArgs``); with
    no secret store at all (simulation) an arg's own value, else the dummy, stands in.
    """
    pairs: list[tuple[str, str | None]] = []
    for a in args:
        if a.secret_name is None:
            pairs.append((a.name, a.value))
        elif not for_measurement:
            pairs.append((a.name, SECRET_PLACEHOLDER))
        elif secrets is None:
            pairs.append((a.name, a.value if a.value is not None else SECRET_PLACEHOLDER))
        else:
            pairs.append((a.name, _secret(a, secrets)))
    return pairs


def _secret(a: Arg, secrets: Secrets) -> str:
    data = secrets.get(a.secret_name or "")
    if data is None:
        raise ArgError(f'secrets "{a.secret_name}" not found')
    key = a.secret_key or ""
    if key not in data:
        raise ArgError(f"key '{key}' does not exist in secret '{a.secret_name}'")
    return data[key]


def resolve_metrics(spec: RunSpec) -> list[Metric]:
    """Arg substitution (metric by metric, in order) then ValidateMetrics; raises ArgError/SpecInvalid."""
    pairs = _arg_pairs(spec.args, None, for_measurement=False)
    return build_metrics([resolve_metric(m, pairs) for m in spec.metrics])


def dry_run_metrics(spec: RunSpec, names: list[str]) -> frozenset[str]:
    """GetDryRunMetrics; raises SpecInvalid for a rule that matches no metric."""
    for i, pattern in enumerate(spec.dry_run):
        if not any(_regex_matches(pattern, n) for n in names):
            raise SpecInvalid(f"dryRun[{i}]: Rule didn't match any metric name(s)")
    return frozenset(n for n in names if any(_regex_matches(p, n) for p in spec.dry_run))


def retention_limits(spec: RunSpec, names: list[str]) -> dict[str, int]:
    """GetMeasurementRetentionMetrics: per metric, the limit of the *last* matching rule (each
    rule overwrites the map entry); raises SpecInvalid for a rule that matches no metric."""
    limits: dict[str, int] = {}
    for i, (pattern, limit) in enumerate(spec.retention):
        matched = [n for n in names if _regex_matches(pattern, n)]
        if not matched:
            raise SpecInvalid(f"measurementRetention[{i}]: Rule didn't match any metric name(s)")
        limits.update(dict.fromkeys(matched, limit))
    return limits


def is_terminating(spec: RunSpec, status: RunStatus, dry_run: frozenset[str] = frozenset()) -> bool:
    """IsTerminating: spec.terminate, or a non-dry-run metric result already Failed/Error/Inconclusive."""
    if spec.terminate:
        return True
    return any(r.phase in (Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE) and not (r.dry_run or r.name in dry_run)
               for r in status.metric_results)


def plan(spec: RunSpec, status: RunStatus, now: datetime, secrets: Secrets | None = None) -> Plan:
    """Decide what this reconcile measures. A run-level problem comes back as ``error``.

    Order of checks as in reconcileAnalysisRun: argument resolution, ValidateMetrics, dryRun
    rules, measurementRetention rules, then (for the measurement) the secrets.
    """
    try:
        metrics = resolve_metrics(spec)
    except ArgError as exc:
        return Plan(error=f"Unable to resolve metric arguments: {exc}")
    except SpecInvalid as exc:
        return Plan(error=f"Analysis spec invalid: {exc}")
    names = [m.name for m in metrics]
    try:
        dry_run = dry_run_metrics(spec, names)
        retention = retention_limits(spec, names)
    except SpecInvalid as exc:
        return Plan(error=f"Analysis spec invalid: {exc}")
    terminating = is_terminating(spec, status, dry_run)
    due = [i for i, m in enumerate(metrics) if _is_due(m, status, terminating, now, spec.time_scale)]
    out = Plan(metrics=metrics, terminating=terminating, dry_run=dry_run, time_scale=spec.time_scale,
               retention=retention)
    has_secrets = any(a.secret_name is not None for a in spec.args)
    if not has_secrets:
        out.due = [metrics[i] for i in due]
        return out
    try:
        pairs = _arg_pairs(spec.args, secrets, for_measurement=True)
        out.secret_values = tuple(v for a, (_, v) in zip(spec.args, pairs, strict=True)
                                  if a.secret_name is not None and secrets is not None and v)
        out.due = [_with_secrets(i, spec.metrics[i], pairs) for i in due]
    except ArgError as exc:
        return Plan(error=f"Unable to resolve metric arguments: {exc}")
    except SpecInvalid as exc:  # only if a secret's text turns a number invalid
        return Plan(error=f"Analysis spec invalid: {exc}")
    return out


def _with_secrets(index: int, raw: Mapping[str, Any], pairs: list[tuple[str, str | None]]) -> Metric:
    try:
        return build_metrics([resolve_metric(raw, pairs)])[0]
    except SpecInvalid as exc:
        raise SpecInvalid(str(exc).replace("metrics[0]", f"metrics[{index}]", 1)) from None


def _wait_after(metric: Metric, last: Measurement) -> float:
    if last.phase == Phase.ERROR:
        return ERROR_RETRY
    return metric.interval if metric.interval is not None else ERROR_RETRY


def due_time(metric: Metric, status: RunStatus, now: datetime, scale: float = 1.0) -> datetime | None:
    """When this metric next wants a measurement (None: not yet known, or never again).

    generateMetricTasks / calculateNextReconcileTime: a new metric is due now, or at
    ``startedAt + initialDelay`` (unknown before the first reconcile has set ``startedAt``); then
    ``finishedAt + wait`` until its count is reached, wait being 10 s after an Error measurement
    (whatever the interval) and the interval otherwise.
    """
    result = status.result(metric.name)
    if result is not None and result.phase.completed:
        return None
    last = result.measurements[-1] if result and result.measurements else None
    if last is None:
        if metric.initial_delay is not None:
            if status.started_at is None:
                return None
            return status.started_at + timedelta(seconds=metric.initial_delay / scale)
        return now
    effective = metric.effective_count
    if effective is not None and result is not None and result.count >= effective:
        return None
    if last.finished_at is None:
        return None
    return last.finished_at + timedelta(seconds=_wait_after(metric, last) / scale)


def _is_due(metric: Metric, status: RunStatus, terminating: bool, now: datetime, scale: float) -> bool:
    if terminating:
        return False
    due = due_time(metric, status, now, scale)
    return due is not None and now >= due


def next_wake(plan_: Plan, status: RunStatus, now: datetime,
              skip: frozenset[str] = frozenset()) -> datetime | None:
    """The earliest time a metric (other than those in ``skip``) becomes due; None when none will."""
    if status.completed or plan_.error:
        return None
    times = [t for m in plan_.metrics if m.name not in skip and (t := due_time(m, status, now, plan_.time_scale)) is not None]
    return min(times) if times else None


def _limit_reason(metric: Metric, r: MetricResult) -> tuple[Phase | None, str]:
    """assessMetricFailureInconclusiveOrError: each exceeded limit overrides the previous."""
    phase: Phase | None = None
    reason = ""
    if metric.failure_limit >= 0 and r.failed > metric.failure_limit:
        phase, reason = Phase.FAILED, f"failed ({r.failed}) > failureLimit ({metric.failure_limit})"
    if r.inconclusive > metric.inconclusive_limit:
        phase = Phase.INCONCLUSIVE
        reason = f"inconclusive ({r.inconclusive}) > inconclusiveLimit ({metric.inconclusive_limit})"
    if r.consecutive_error > metric.consecutive_error_limit:
        phase = Phase.ERROR
        reason = (f"consecutiveErrors ({r.consecutive_error}) > consecutiveErrorLimit "
                  f"({metric.consecutive_error_limit})")
    return phase, reason


def assess_metric(metric: Metric, r: MetricResult, terminating: bool) -> Phase:
    """assessMetricStatus (argo-semantics.md §6)."""
    if r.phase.completed:
        return r.phase
    if not r.measurements:
        return Phase.SUCCESSFUL if terminating else Phase.PENDING
    if not r.measurements[-1].phase.completed:
        return Phase.RUNNING
    limited, _ = _limit_reason(metric, r)
    if limited is not None:
        return limited
    csl = metric.consecutive_success_limit
    if csl > 0 and r.consecutive_success >= csl:
        return Phase.SUCCESSFUL
    effective = metric.effective_count
    if effective is not None and r.count >= effective:
        if metric.failure_limit >= 0 and csl > 0:
            return Phase.INCONCLUSIVE
        if metric.failure_limit < 0 and csl > 0:
            return Phase.FAILED
        return Phase.SUCCESSFUL
    return Phase.SUCCESSFUL if terminating else Phase.RUNNING


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        text = text.replace(s, REDACTED)
    return text


def apply(spec: RunSpec, status: RunStatus, plan_: Plan, measured: Mapping[str, Measurement],
          now: datetime) -> RunStatus:
    """Fold this reconcile's measurements into ``status`` (mutated and returned)."""
    if status.completed:
        return status
    if plan_.error is not None:
        # reconcileAnalysisRun's early returns set only phase and message: no startedAt,
        # no completedAt, metric results and summaries untouched.
        status.phase = Phase.ERROR
        status.message = plan_.error
        return status
    due = {m.name: m for m in plan_.due}
    for metric in plan_.metrics:
        m = measured.get(metric.name)
        if m is None:
            continue
        r = status.result(metric.name)
        if r is None:
            r = MetricResult(name=metric.name, dry_run=metric.name in plan_.dry_run)
            query = due.get(metric.name, metric).provider.get("query")
            if metric.provider_kind == "prometheus" and query:  # Prometheus GetMetadata
                r.metadata["ResolvedPrometheusQuery"] = str(query)
            status.metric_results.append(r)
        m.message = _redact(m.message, plan_.secret_values)
        r.record(m)
    phase, message = _assess_run(spec, status, plan_)
    if status.started_at is None:
        status.started_at = now
    if phase != status.phase:
        status.phase = phase
        status.message = message
        if phase.completed:
            status.completed_at = now
    _retain(status, plan_)
    return status


def _assess_run(spec: RunSpec, status: RunStatus, plan_: Plan) -> tuple[Phase, str]:
    """assessRunStatus (argo-semantics.md §8.3, §8.4)."""
    worst: Phase | None = None
    message = "Run Terminated" if spec.terminate else ""
    everything_completed = True
    summary, dry_summary = Summary(), Summary()
    for metric in plan_.metrics:
        dry = metric.name in plan_.dry_run
        (dry_summary if dry else summary).count += 1
        r = status.result(metric.name)
        if r is None:
            everything_completed = False
            continue
        phase = assess_metric(metric, r, plan_.terminating)
        if phase != r.phase:
            if r.measurements:
                r.message = r.measurements[-1].message
            r.phase = phase
        if not phase.completed:
            everything_completed = False
            continue
        reason_phase, reason = _limit_reason(metric, r)
        _tally(dry_summary if dry else summary, reason_phase)
        if dry:
            if worst is None:
                worst = Phase.SUCCESSFUL
            if reason:
                r.message = f"Metric assessed {phase} due to {reason}"
            continue
        if worst is None or is_worse(worst, phase):
            worst = phase
            if reason:
                message = f'Metric "{metric.name}" assessed {phase} due to {reason}'
                if r.message:
                    message += f': "Error Message: {r.message}"'
    status.run_summary, status.dry_run_summary = summary, dry_summary
    if plan_.terminating:
        return (worst or Phase.SUCCESSFUL), message.strip()
    if not everything_completed or worst is None:
        return Phase.RUNNING, ""
    return worst, message.strip()


def _tally(s: Summary, reason_phase: Phase | None) -> None:
    if reason_phase == Phase.FAILED:
        s.failed += 1
    elif reason_phase == Phase.INCONCLUSIVE:
        s.inconclusive += 1
    elif reason_phase == Phase.ERROR:
        s.error += 1
    else:
        s.successful += 1


def _retain(status: RunStatus, plan_: Plan) -> None:
    """garbageCollectMeasurements: keep the newest N (the last matching rule's limit if > 0, else 10)."""
    for r in status.metric_results:
        limit = plan_.retention.get(r.name, 0)
        if limit <= 0:
            limit = DEFAULT_RETENTION
        if len(r.measurements) > limit:
            drop = len(r.measurements) - limit
            r.trimmed += drop
            del r.measurements[:drop]
