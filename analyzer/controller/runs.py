"""Analysis runs of a rollout, kept in the rollout's own status and advanced one round per pass.

Argo keeps each AnalysisRun as its own object with its own controller. We keep the run's status
(Argo's AnalysisRun ``.status`` JSON, byte for byte the same shape) inside the rollout's
``status.analysisRuns[].status`` and advance it in the rollout's reconcile: plan the metrics due
now (core.analysis), measure them with the providers, fold them in. Why: one object holds all
progress, so one optimistic write commits both the rollout's step and the measurements that
decided it. A crash between measuring and writing loses only that round, which the next pass
measures again; nothing is skipped and nothing is counted twice.

Templates come from a :class:`~analyzer.ports.TemplateSource` (AnalysisTemplate and
ClusterAnalysisTemplate objects in a cluster, files locally). Several templates in one analysis
are merged with Argo's rules (``analyzer.argo.compose``). Arguments are the rollout's, with
``valueFrom.fieldRef`` read from the rollout object; a few context arguments are filled in when a
template declares them and the rollout does not pass them (``rollout``, ``namespace``,
``stable``, ``canary``, ``start``: the run's start, RFC 3339) so judge templates need no wiring.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from analyzer.argo.compose import compose
from analyzer.argo.errors import TemplateError
from analyzer.argo.templates import API_VERSION, Template, merge_args, missing_args, parse_template
from analyzer.controller.analysis_runner import measure
from analyzer.core import analysis
from analyzer.core.model import Phase, RunStatus, rfc3339, run_status_from_json
from analyzer.core.steps import AnalysisRunRecord, AnalysisSpec, RolloutSpec, RunKind, StepKind, Verdict
from analyzer.ports import Clock, MetricProvider, TemplateSource


class RunSetupError(Exception):
    """The run cannot start: a template is missing or invalid, an argument has no value."""


@dataclass(frozen=True)
class Advanced:
    verdict: Verdict
    wake_in: float | None  # seconds until this run next needs a pass; None: nothing time-based


def analysis_for(spec: RolloutSpec, record: AnalysisRunRecord) -> AnalysisSpec | None:
    if record.kind is RunKind.BACKGROUND:
        return spec.background.analysis if spec.background is not None else None
    i = record.step_index
    if i is None or not 0 <= i < len(spec.steps) or spec.steps[i].kind is not StepKind.ANALYSIS:
        return None
    return spec.steps[i].analysis


_FIELD_PATH = re.compile(r"^([A-Za-z0-9_.]+?)(?:\['([^']+)'\])?$")


def _field_ref(obj: Mapping[str, Any], path: str) -> str | None:
    m = _FIELD_PATH.match(path)
    if m is None:
        return None
    cur: Any = obj
    for part in m.group(1).split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    if m.group(2) is not None:
        cur = cur.get(m.group(2)) if isinstance(cur, Mapping) else None
    return None if cur is None else str(cur)


def _arg_values(spec: RolloutSpec, analysis_spec: AnalysisSpec, rollout: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in analysis_spec.args:
        if a.value is not None:
            out[a.name] = a.value
        elif a.value_from:
            field_ref = a.value_from.get("fieldRef")
            hash_from = a.value_from.get("podTemplateHashValue")
            if isinstance(field_ref, Mapping) and field_ref.get("fieldPath"):
                value = _field_ref(rollout, str(field_ref["fieldPath"]))
                if value is None:
                    raise RunSetupError(f"arg {a.name}: fieldRef {field_ref['fieldPath']} is not set on the rollout")
                out[a.name] = value
            elif hash_from in ("Stable", "Latest"):
                # No pod-template hash with separate destinations: the destination's subset or host.
                dest = spec.stable if hash_from == "Stable" else spec.canary
                out[a.name] = dest.subset or dest.host or ""
            else:
                raise RunSetupError(f"arg {a.name}: valueFrom {dict(a.value_from)} is not supported here "
                                    "(fieldRef or podTemplateHashValue)")
    return out


def _context_args(spec: RolloutSpec, namespace: str, started: datetime | None) -> dict[str, str]:
    ctx = {"rollout": spec.name, "namespace": namespace,
           "stable": spec.stable.host or spec.stable.subset or "",
           "canary": spec.canary.host or spec.canary.subset or ""}
    if started is not None:
        ctx["start"] = rfc3339(started) or ""
    return ctx


def build_run_spec(spec: RolloutSpec, analysis_spec: AnalysisSpec, templates: TemplateSource, namespace: str,
                   rollout: Mapping[str, Any], started: datetime | None, *,
                   time_scale: float = 1.0) -> analysis.RunSpec:
    """The AnalysisRun spec for one analysis of this rollout; raises RunSetupError."""
    source = f"{rollout.get('kind', 'rollout')} {namespace}/{spec.name}"

    def lookup(name: str, cluster: bool) -> Template | None:
        doc = templates.get(namespace, name, cluster)
        if doc is None:
            return None
        kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
        return parse_template(doc, f"{kind} {name}")

    root = Template(kind="AnalysisTemplate", name=f"{spec.name}-analysis",
                    spec=analysis.RunSpec(metrics=()),
                    raw={"apiVersion": API_VERSION, "kind": "AnalysisTemplate"},
                    template_refs=[(t.name, t.cluster_scope) for t in analysis_spec.templates])
    try:
        template = compose(root, lookup, source)
    except TemplateError as exc:
        raise RunSetupError(str(exc).replace("\n", "; ")) from None
    supplied = _arg_values(spec, analysis_spec, rollout)
    declared = template.declared_args()
    for k, v in _context_args(spec, namespace, started).items():
        if k in declared and k not in supplied and declared[k].value is None and declared[k].secret_name is None:
            supplied[k] = v
    run_spec, _unknown = merge_args(template, supplied, time_scale)
    missing = missing_args(run_spec)
    if missing:
        raise RunSetupError(f"{source}: no value for argument(s) {', '.join(missing)} of "
                            f"{analysis_spec.describe()}")
    raw = analysis_spec.raw
    if raw.get("dryRun") or raw.get("measurementRetention"):
        dry = tuple(str(d.get("metricName")) for d in raw.get("dryRun") or [] if isinstance(d, Mapping))
        keep = tuple((str(d.get("metricName")), int(d.get("limit") or 0))
                     for d in raw.get("measurementRetention") or [] if isinstance(d, Mapping))
        run_spec = replace(run_spec, dry_run=run_spec.dry_run + dry, retention=run_spec.retention + keep)
    return run_spec


async def advance(run_spec: analysis.RunSpec, record: AnalysisRunRecord, providers: Mapping[str, MetricProvider],
                  clock: Clock) -> Advanced:
    """One round of the run: measure what is due now, fold it in, report the verdict."""
    if record.terminated and not run_spec.terminate:
        run_spec = replace(run_spec, terminate=True)
    status = run_status_from_json(record.detail) if record.detail else RunStatus()
    now = clock.now()
    plan = analysis.plan(run_spec, status, now)
    results = await asyncio.gather(*(measure(m, providers, clock) for m in plan.due))
    measured = {m.name: r for m, r in zip(plan.due, results, strict=True)}
    analysis.apply(run_spec, status, plan, measured, clock.now())
    wake_in: float | None = None
    if not status.completed:
        wake = analysis.next_wake(plan, status, clock.now())
        if wake is not None:
            wake_in = max(0.0, (wake - clock.now()).total_seconds())
    return Advanced(Verdict(status.phase or Phase.PENDING, _explained(status), status.to_json()), wake_in)


def _explained(status: RunStatus) -> str:
    """Argo's run message says which limit was passed; a provider that explains its answer (the
    judge's ``reason`` in the measurement metadata) says why, and people need the why."""
    if status.phase not in (Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE):
        return status.message
    for r in status.metric_results:
        if r.phase == status.phase and r.measurements:
            reason = r.measurements[-1].metadata.get("reason")
            if reason and reason not in status.message:
                return f"{status.message}: {reason}" if status.message else reason
    return status.message


def setup_failed(record: AnalysisRunRecord, message: str, now: datetime) -> Advanced:
    """A run that cannot start is an Error run (Argo: the AnalysisRun errors), which aborts."""
    status = RunStatus(phase=Phase.ERROR, message=message, started_at=record.started_at or now, completed_at=now)
    return Advanced(Verdict(Phase.ERROR, message, status.to_json()), None)
