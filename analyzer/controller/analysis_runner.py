"""Drive one AnalysisRun live: plan with the core, measure with providers, fold, sleep, repeat.

Termination (Ctrl-C in the CLI, a rollout abort in the daemon) sets ``spec.terminate`` exactly
as Argo's ``terminate`` does; the run then finishes on its next reconcile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace

from analyzer.core import analysis
from analyzer.core.conditions import to_measurement
from analyzer.core.metric import Metric
from analyzer.core.model import Measurement, RunStatus
from analyzer.core.outcome import ProviderOutcome
from analyzer.ports import Clock, MetricProvider

SUPPORTED_HINT = "supported: prometheus, web, judge"


async def measure(metric: Metric, providers: Mapping[str, MetricProvider], clock: Clock) -> Measurement:
    started = clock.now()
    provider = providers.get(metric.provider_kind or "")
    if provider is None:
        outcome = ProviderOutcome.failed(
            f'provider "{metric.provider_kind}" is not supported by rollout-analyzer ({SUPPORTED_HINT})')
    else:
        try:
            outcome = await provider.measure(metric.provider, started)
        except Exception as exc:  # a provider bug must not kill the run: it is an Error measurement
            outcome = ProviderOutcome.failed(f"provider {metric.provider_kind} failed: {exc!r}")
    return to_measurement(metric.success_condition, metric.failure_condition, outcome, started, clock.now())


async def run_analysis(spec: analysis.RunSpec, providers: Mapping[str, MetricProvider], clock: Clock, *,
                       terminate: asyncio.Event | None = None,
                       on_update: Callable[[RunStatus], None] | None = None,
                       secrets: analysis.Secrets | None = None,
                       status: RunStatus | None = None) -> RunStatus:
    """Run until the AnalysisRun completes (or nothing is left to measure); returns its status."""
    status = status or RunStatus()
    terminate = terminate or asyncio.Event()
    while True:
        if terminate.is_set() and not spec.terminate:
            spec = replace(spec, terminate=True)
        now = clock.now()
        plan = analysis.plan(spec, status, now, secrets)
        results = await asyncio.gather(*(measure(m, providers, clock) for m in plan.due))
        measured = {m.name: r for m, r in zip(plan.due, results, strict=True)}
        before = (status.phase, [(r.name, r.phase) for r in status.metric_results])
        analysis.apply(spec, status, plan, measured, clock.now())
        if on_update:
            on_update(status)
        if status.completed:
            return status
        if measured or before != (status.phase, [(r.name, r.phase) for r in status.metric_results]):
            continue
        wake = analysis.next_wake(plan, status, clock.now())
        if wake is None:
            return status
        delay = (wake - clock.now()).total_seconds()
        if delay > 0:
            try:
                await asyncio.wait_for(terminate.wait(), timeout=delay)
            except TimeoutError:
                pass
