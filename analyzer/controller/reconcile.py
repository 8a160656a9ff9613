"""One reconcile pass for one rollout: read, advance its analyses, decide, act, write, requeue.

The only place where the pure step engine (``core.steps.decide``) meets the adapters. Order of
a pass, and why it is safe to stop between any two of these (the process can be killed
anywhere; the next pass starts again from what is stored):

1. read the rollout (spec + status + resourceVersion) from the :class:`RolloutStore`;
2. advance every running analysis by one round (measurements are only kept once step 6
   commits them; a crash re-measures, never skips);
3. read capacity facts; ``decide``;
4. scale the canary if the decision says so (idempotent: "at least N");
5. apply the decided traffic through the router and read it back. The decision is level-based:
   it is the complete traffic wanted now, computed from the stored status, so repeating it after
   a crash writes the same weights again and never a weight outside the plan;
6. write the status with the resourceVersion read in 1 (a concurrent writer -> re-read, decide
   again); then tell the events.

Failures outside us: a router that cannot be reached or driven leaves the stored status saying
so (``trafficProblems``), and the step does not complete until the weight reads back; an abort
keeps asking for "all traffic to stable" every pass until it is confirmed. A metric provider
that fails gives Error measurements, which Argo's limits turn into an Error run, which aborts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from analyzer.argo.errors import TemplateError
from analyzer.controller import runs
from analyzer.controller.clock import SystemClock
from analyzer.core.model import Phase
from analyzer.core.steps import (
    AnalysisRunRecord,
    Decision,
    EnsureAnalysisRun,
    Facts,
    RolloutPhase,
    RolloutSpec,
    ScaleCanary,
    TrafficObservation,
    Verdict,
    decide,
    record_traffic,
)
from analyzer.ports import (
    CapacitySource,
    Clock,
    EventSink,
    MetricProvider,
    RolloutStore,
    RouterError,
    TemplateSource,
    TrafficRouter,
    WriteConflict,
)
from analyzer.rollout.spec import parse_rollout
from analyzer.rollout.status import status_from_json, status_to_json

log = structlog.get_logger("analyzer.reconcile")

RouterFactory = Callable[[RolloutSpec, str], TrafficRouter]
MAX_IMMEDIATE_PASSES = 8  # passes in a row when the engine asks to decide again at once
ROUTER_RETRY = 2.0  # seconds before trying a router that failed again


@dataclass
class Controller:
    """Everything a pass needs. ``time_scale`` divides analysis waits (demos and tests)."""

    store: RolloutStore
    router_for: RouterFactory
    providers: Mapping[str, MetricProvider]
    templates: TemplateSource
    capacity: CapacitySource | None = None
    events: EventSink | None = None
    clock: Clock = field(default_factory=SystemClock)
    time_scale: float = 1.0
    # Called after every committed status write (metrics, live progress in the demo).
    on_status: Callable[[Mapping[str, Any]], None] | None = None


@dataclass(frozen=True)
class PassResult:
    requeue_after: float | None  # seconds; None: only on a change of the rollout
    phase: str | None = None
    gone: bool = False
    wrote: bool = False
    conflicts: int = 0


async def reconcile(ctl: Controller, namespace: str, name: str) -> PassResult:
    """Passes until the engine has nothing to do at once; returns when to come back."""
    conflicts = 0
    result = PassResult(0)
    for _ in range(MAX_IMMEDIATE_PASSES):
        try:
            result = await reconcile_once(ctl, namespace, name)
        except WriteConflict:
            conflicts += 1
            result = PassResult(0, conflicts=conflicts)
            continue
        if result.requeue_after != 0 or result.gone:
            break
    if result.requeue_after == 0:
        result = PassResult(0.1, result.phase, result.gone, result.wrote, conflicts)
    return result


def _invalid(ctl: Controller, namespace: str, name: str, obj: Mapping[str, Any], message: str) -> PassResult:
    """An invalid spec cannot be driven: say so in the status and touch no traffic."""
    status = dict(obj.get("status") or {})
    text = f"InvalidSpec: {message}"
    if status.get("message") != text or status.get("phase") != str(RolloutPhase.DEGRADED):
        status.update({"phase": str(RolloutPhase.DEGRADED), "message": text,
                       "observedGeneration": (obj.get("metadata") or {}).get("generation", 0)})
        ctl.store.update_status(namespace, name, status, str((obj.get("metadata") or {}).get("resourceVersion", "")))
        _emit(ctl, obj, "InvalidSpec", message, warning=True)
        return PassResult(None, str(RolloutPhase.DEGRADED), wrote=True)
    return PassResult(None, str(RolloutPhase.DEGRADED))


def _emit(ctl: Controller, obj: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    meta = obj.get("metadata") or {}
    log.info("event", rollout=f"{meta.get('namespace')}/{meta.get('name')}", reason=reason, message=message,
             warning=warning)
    if ctl.events is not None:
        try:
            ctl.events.emit(obj, reason, message, warning=warning)
        except Exception as exc:  # a sink must not raise; if one does, the rollout goes on
            log.warning("event sink failed", error=repr(exc))


async def _advance_runs(ctl: Controller, spec: RolloutSpec, obj: Mapping[str, Any], namespace: str,
                        status: Any) -> tuple[dict[str, Verdict], float | None]:
    verdicts: dict[str, Verdict] = {}
    wake: float | None = None
    now = ctl.clock.now()
    for record in status.analysis_runs:
        if record.completed:
            continue
        analysis_spec = runs.analysis_for(spec, record)
        if analysis_spec is None:
            verdicts[record.name] = runs.setup_failed(record, "its step no longer exists", now).verdict
            continue
        try:
            run_spec = runs.build_run_spec(spec, analysis_spec, ctl.templates, namespace, obj,
                                           record.started_at or now, time_scale=ctl.time_scale)
        except (runs.RunSetupError, TemplateError) as exc:
            verdicts[record.name] = runs.setup_failed(record, str(exc), now).verdict
            continue
        advanced = await runs.advance(run_spec, record, ctl.providers, ctl.clock)
        verdicts[record.name] = advanced.verdict
        if advanced.wake_in is not None:
            wake = advanced.wake_in if wake is None else min(wake, advanced.wake_in)
    return verdicts, wake


def _not_started(record: AnalysisRunRecord | None) -> bool:
    return record is None or record.detail is None


def _apply_traffic(ctl: Controller, spec: RolloutSpec, namespace: str, decision: Decision) -> TrafficObservation:
    try:
        return ctl.router_for(spec, namespace).apply(decision.traffic)
    except (RouterError, WriteConflict) as exc:
        return TrafficObservation(None, problems=(str(exc),))
    except Exception as exc:  # the API server or the proxy is down: say so, retry soon
        return TrafficObservation(None, problems=(f"traffic router unavailable: {exc}",))


async def reconcile_once(ctl: Controller, namespace: str, name: str) -> PassResult:
    obj = await asyncio.to_thread(ctl.store.get, namespace, name)
    if obj is None:
        return PassResult(None, gone=True)
    meta = obj.get("metadata") or {}
    source = f"{obj.get('kind', 'rollout')} {namespace}/{name}"
    try:
        spec, _warnings = parse_rollout(obj, source)
    except TemplateError as exc:
        return await asyncio.to_thread(_invalid, ctl, namespace, name, obj,
                                       "; ".join(e.render("") for e in exc.errors) or str(exc))
    if spec.namespace is None:
        spec = replace(spec, namespace=namespace)
    stored = status_from_json(obj.get("status"))
    verdicts, run_wake = await _advance_runs(ctl, spec, obj, namespace, stored)

    capacity = None
    if ctl.capacity is not None:
        try:
            capacity = await asyncio.to_thread(ctl.capacity.facts, namespace, spec)
        except Exception as exc:  # unknown capacity holds the weight (the gate waits), never raises it
            log.warning("capacity facts unavailable", rollout=f"{namespace}/{name}", error=str(exc))
    now = ctl.clock.now()
    decision = decide(spec, stored, Facts(verdicts, capacity), now)

    for action in decision.actions:
        if isinstance(action, ScaleCanary) and ctl.capacity is not None:
            try:
                await asyncio.to_thread(ctl.capacity.scale_canary, namespace, spec, action.replicas)
            except Exception as exc:
                log.warning("scaling the canary failed", rollout=f"{namespace}/{name}", error=str(exc))

    observation = await asyncio.to_thread(_apply_traffic, ctl, spec, namespace, decision)
    new_status = record_traffic(decision.status, observation, ctl.clock.now())
    new_json = status_to_json(new_status)

    wrote = False
    if new_json != (obj.get("status") or {}):
        stored_obj = await asyncio.to_thread(ctl.store.update_status, namespace, name, new_json,
                                             str(meta.get("resourceVersion", "")))
        wrote = True
        for ev in decision.events:
            _emit(ctl, stored_obj, ev.reason, ev.message, warning=ev.warning)
        if ctl.on_status is not None:
            ctl.on_status(stored_obj)

    requeue = decision.requeue_after
    new_runs = any(isinstance(a, EnsureAnalysisRun) and _not_started(new_status.run(a.name))
                   for a in decision.actions)
    if new_runs:
        requeue = 0.0
    if observation.problems and not new_status.promoted:
        requeue = ROUTER_RETRY if requeue is None else min(requeue, ROUTER_RETRY)
    if run_wake is not None:
        requeue = run_wake if requeue is None else min(requeue, run_wake)
    if any(v.phase is not Phase.PENDING and not v.phase.completed for v in verdicts.values()) and requeue is None:
        requeue = 1.0
    return PassResult(requeue, str(new_status.phase), wrote=wrote)

