"""``analyzer.simulate``: run an AnalysisTemplate on a virtual clock with scripted provider outcomes.

The driver mirrors Argo's controller loop: reconcile, and after any change reconcile once
more at the same instant (the status-update event, which is what lets a sibling's failure
terminate the run), then move the clock to the next round of measurements (see ``simulate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from analyzer.argo.errors import Problems, TemplateError
from analyzer.argo.templates import Template, merge_args, parse_spec_dict
from analyzer.core import analysis
from analyzer.core.conditions import to_measurement
from analyzer.core.metric import Metric
from analyzer.core.model import Measurement, RunStatus
from analyzer.core.outcome import ProviderOutcome

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_PROM_SPECIALS = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}


def _spec_of(template: Mapping[str, Any]) -> Template:
    body = template.get("spec", template) if isinstance(template, Mapping) else None
    if not isinstance(body, Mapping):
        raise TemplateError("<template>", [])
    c = Problems()
    spec = parse_spec_dict(body, c, "spec")
    if c.errors:
        raise TemplateError("<template>", c.errors)
    return Template(kind=str(template.get("kind", "AnalysisTemplate")), name="", spec=spec, raw=template)


def _prom_value(value: Any) -> Any:
    """Prometheus never hands strings to conditions: "NaN"/"+Inf"/"-Inf" stand for floats."""
    if isinstance(value, str) and value in _PROM_SPECIALS:
        return _PROM_SPECIALS[value]
    if isinstance(value, list):
        return [_prom_value(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def measurement_from(metric: Metric, scripted: Mapping[str, Any], now: datetime) -> Measurement:
    if "error" in scripted:
        outcome = ProviderOutcome.failed(str(scripted["error"]))
    else:
        value = scripted.get("value")
        outcome = ProviderOutcome(value=_prom_value(value) if metric.provider_kind == "prometheus" else value)
    return to_measurement(metric.success_condition, metric.failure_condition, outcome, now, now)


def simulate(template: Mapping[str, Any], results: Mapping[str, list[Mapping[str, Any]]], *,
             args: Mapping[str, str] | None = None, terminate_after: int | None = None) -> dict[str, Any]:
    """Run ``template`` against scripted outcomes; return the AnalysisRun ``status`` as Argo's JSON.

    ``results`` maps a metric name to its provider outcomes, consumed in order (``{value: X}`` or
    ``{error: msg}``); a metric whose list is used up takes no more measurements (the run is then
    left as it stands, typically Running). ``terminate_after=N`` sets ``spec.terminate`` after N
    measurement rounds (if every list runs out first, the remaining rounds pass empty and the
    termination still applies).

    Time advances in rounds ("ticks"): each tick, every metric that still wants a measurement
    takes one, and the controller then reconciles again at once (the status-update event — what
    lets a sibling's failure or ``terminate`` end the run). Within a tick each metric is measured
    at its own due time (``finishedAt`` + interval, or + 10 s after an Error, or
    ``startedAt + initialDelay``), so recorded timestamps show Argo's waits. Metrics that share
    an interval (or are one-shot) stay in step: the tick waits for the latest of their due times,
    so one retrying an Error (10 s) is measured once per round alongside the others, as in the
    conformance cases' tick model. Metrics with different intervals follow the clock instead,
    and a metric in its initialDelay joins the first tick at or after its start. With a single
    metric this is exactly Argo's timeline.
    """
    tmpl = _spec_of(template)
    spec, _ = merge_args(tmpl, {k: str(v) for k, v in (args or {}).items()})
    queues = {name: list(items) for name, items in results.items()}
    status = RunStatus()
    clock = EPOCH
    rounds = 0

    def want_terminate() -> bool:
        return terminate_after is not None and rounds >= terminate_after and not spec.terminate

    for _ in range(100_000):  # ticks; a hard stop for endless outcome lists
        taken: set[str] = set()
        for _ in range(1_000):  # reconciles within one tick
            if want_terminate():
                spec = replace(spec, terminate=True)
            plan = analysis.plan(spec, status, clock)
            measured: dict[str, Measurement] = {}
            for metric in plan.due:
                queue = queues.get(metric.name)
                if metric.name in taken or not queue:
                    continue
                at = analysis.due_time(metric, status, clock, plan.time_scale) or clock
                measured[metric.name] = measurement_from(metric, queue.pop(0), min(at, clock))
            before = _snapshot(status)
            analysis.apply(spec, status, plan, measured, clock)
            if measured and not taken:
                rounds += 1
            taken |= measured.keys()
            if status.completed:
                return status.to_json()
            if not (measured or before != _snapshot(status) or want_terminate()):
                break
        nxt = _next_tick(plan, status, clock, queues)
        if nxt is None or (nxt <= clock and not taken):
            if terminate_after is not None and not spec.terminate:
                # nothing left to measure: the remaining rounds pass empty, then terminate applies
                rounds = max(rounds, terminate_after)
                continue
            break
        clock = max(clock, nxt)
    return status.to_json()


def _snapshot(status: RunStatus) -> tuple[Any, ...]:
    return status.phase, tuple((r.name, r.phase, len(r.measurements)) for r in status.metric_results)


def _next_tick(plan: analysis.Plan, status: RunStatus, clock: datetime,
               queues: Mapping[str, list[Mapping[str, Any]]]) -> datetime | None:
    """When the next round happens (None: nothing will be measured again).

    Started metrics sharing one interval (or having none) move in step: the round waits for the
    latest of their due times. Metrics with different intervals follow the clock (the earliest
    due time). A metric still in its initialDelay joins the first round at or after its start.
    """
    if plan.error is not None or plan.terminating:
        return None
    started: list[datetime] = []
    waiting: list[datetime] = []
    intervals: set[float] = set()
    for metric in plan.metrics:
        if not queues.get(metric.name):
            continue
        due = analysis.due_time(metric, status, clock, plan.time_scale)
        if due is None:
            continue
        result = status.result(metric.name)
        if result is not None and result.measurements:
            started.append(due)
            if metric.interval is not None:
                intervals.add(metric.interval)
        else:
            waiting.append(due)
    if started and len(intervals) <= 1:
        return max(started)
    return min(started + waiting) if started or waiting else None
