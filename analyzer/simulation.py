"""``analyzer.simulate``: run an AnalysisTemplate on a virtual clock with scripted provider outcomes.

The driver mirrors Argo's controller loop: reconcile, and after any change reconcile once
more at the same instant (the status-update event, which is what lets a sibling's failure
terminate the run), then jump the clock to the next due time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from analyzer.argo.errors import TemplateError
from analyzer.argo.templates import Template, _Collector, merge_args, parse_spec_dict
from analyzer.core import analysis
from analyzer.core.conditions import to_measurement
from analyzer.core.metric import Metric
from analyzer.core.model import Measurement, Phase, RunStatus
from analyzer.core.outcome import ProviderOutcome

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_PROM_SPECIALS = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}


def _spec_of(template: Mapping[str, Any]) -> Template:
    body = template.get("spec", template) if isinstance(template, Mapping) else None
    if not isinstance(body, Mapping):
        raise TemplateError("<template>", [])
    c = _Collector()
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
    """Run ``template`` against scripted outcomes; return the AnalysisRun ``status`` as Argo's JSON."""
    tmpl = _spec_of(template)
    spec, _ = merge_args(tmpl, {k: str(v) for k, v in (args or {}).items()})
    queues = {name: list(items) for name, items in results.items()}
    status = RunStatus(phase=Phase.RUNNING)
    now = EPOCH
    rounds = 0
    for _ in range(100_000):  # a hard stop for runs with no count and endless outcomes
        if terminate_after is not None and rounds >= terminate_after and not spec.terminate:
            spec = analysis.RunSpec(spec.metrics, spec.args, spec.dry_run, spec.retention, terminate=True)
        plan = analysis.plan(spec, status, now)
        measured: dict[str, Measurement] = {}
        for metric in plan.due:
            queue = queues.get(metric.name)
            if queue:
                measured[metric.name] = measurement_from(metric, queue.pop(0), now)
        before = (status.phase, [(r.name, r.phase) for r in status.metric_results])
        analysis.apply(spec, status, plan, measured, now)
        if measured:
            rounds += 1
        if status.completed:
            break
        after = (status.phase, [(r.name, r.phase) for r in status.metric_results])
        if measured or before != after:
            continue  # the status update triggers an immediate reconcile
        if terminate_after is not None and rounds >= terminate_after and not spec.terminate:
            continue
        exhausted = frozenset(m.name for m in plan.metrics if not queues.get(m.name))
        nxt = analysis.next_wake(plan, status, now, skip=exhausted)
        if nxt is None:
            break
        now = max(now, nxt)
    return status.to_json()
