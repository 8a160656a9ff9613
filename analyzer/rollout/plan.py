"""``analyzer plan``: what a rollout does to its VirtualServices (or InferenceService), step by
step, offline.

It is the real machinery on a virtual clock: the step engine (``core.steps.decide``) decides, the
real Istio/KServe router code rewrites the objects of the file (held in memory, written with the
same guarded JSON patches as on a cluster), the read-back is recorded, and time jumps to the next
wake-up. Every analysis is assumed Successful, capacity is assumed available, and an indefinite
pause is assumed promoted by a person. A row is taken when a step completes (the objects as they
are after that step) and once more when the rollout is promoted.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from analyzer.core.model import Phase
from analyzer.core.steps import (
    Destination,
    EnsureAnalysisRun,
    Facts,
    IstioRouting,
    KServeRouting,
    RolloutSpec,
    RolloutStatus,
    TrafficObservation,
    TrafficRouting,
    Verdict,
    VirtualServiceRef,
    decide,
    record_traffic,
)
from analyzer.ports import RouterError
from analyzer.rollout.memory import MemoryObjects
from analyzer.routers import istio, kserve

DEFAULT_NAMESPACE = "default"
MAX_PASSES = 10_000


class PlanError(ValueError):
    """The plan cannot be made (no weighted route, unknown VirtualService, stuck rollout...)."""


@dataclass
class PlanRow:
    step: int | str  # the step index, or "promoted"
    step_spec: Mapping[str, Any] | None
    description: str
    canary_weight: int
    virtualservices: list[dict[str, Any]] = field(default_factory=list)
    inferenceservices: list[dict[str, Any]] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "step_spec": copy.deepcopy(dict(self.step_spec))
                               if self.step_spec is not None else None,
                               "canary_weight": self.canary_weight}
        if self.inferenceservices and not self.virtualservices:
            out["inferenceservices"] = self.inferenceservices
        else:
            out["virtualservices"] = self.virtualservices
        return out


def _ns(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or DEFAULT_NAMESPACE)


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("name") or "")


def virtual_service_refs(spec: RolloutSpec, vss: Sequence[Mapping[str, Any]]) -> tuple[VirtualServiceRef, ...]:
    """The VirtualServices of the file the rollout drives: the ones it names, or else every one
    holding a route with both its stable and its canary destination."""
    if spec.traffic.istio is not None and spec.traffic.istio.virtual_services:
        refs = []
        for ref in spec.traffic.istio.virtual_services:
            match = [v for v in vss if _name(v) == ref.name and (ref.namespace is None or _ns(v) == ref.namespace)]
            if not match:
                raise PlanError(f"VirtualService {ref.name!r} named by the rollout is not in the file")
            refs.append(dataclasses.replace(ref, namespace=_ns(match[0])))
        return tuple(refs)
    refs = []
    problems = []
    for v in vss:
        ref = VirtualServiceRef(_name(v), _ns(v))
        try:
            istio.find_weighted_routes(v, ref, spec.stable, spec.canary, spec.managed_route_names())
        except istio.AmbiguousRoute as exc:
            raise PlanError(str(exc)) from None
        except istio.IstioError as exc:
            problems.append(str(exc))
            continue
        refs.append(ref)
    if not refs:
        raise PlanError("no VirtualService in the file has a route with both the stable "
                        f"({spec.stable.describe()}) and the canary ({spec.canary.describe()}) destination; "
                        "pass --stable/--canary with the hosts the routes use\n  " + "\n  ".join(problems))
    return tuple(refs)


def _router(spec: RolloutSpec, store: MemoryObjects, vss: Sequence[Mapping[str, Any]],
            isvcs: Sequence[Mapping[str, Any]]) -> tuple[Any, RolloutSpec]:
    if vss and isvcs:
        raise PlanError("give VirtualServices or InferenceServices, not both")
    if vss:
        if not (spec.stable.host or spec.stable.subset) or not (spec.canary.host or spec.canary.subset):
            raise PlanError("the rollout names no stable/canary destination; pass --stable and --canary")
        refs = virtual_service_refs(spec, vss)
        dr = spec.traffic.istio.destination_rule if spec.traffic.istio else None
        routing = IstioRouting(refs, dr)
        spec = dataclasses.replace(spec, traffic=dataclasses.replace(spec.traffic, istio=routing, kserve=None))
        for v in vss:
            store.put(istio.GROUP, istio.PLURAL, dict(v), _ns(v))
        return istio.IstioRouter(store, routing, spec.stable, spec.canary, DEFAULT_NAMESPACE), spec
    if isvcs:
        ks = spec.traffic.kserve
        if ks is None:
            if len(isvcs) != 1:
                raise PlanError("the rollout names no InferenceService and the file holds several")
            ks = KServeRouting(_name(isvcs[0]), _ns(isvcs[0]))
        match = [i for i in isvcs if _name(i) == ks.inference_service]
        if not match:
            raise PlanError(f"InferenceService {ks.inference_service!r} named by the rollout is not in the file")
        ks = dataclasses.replace(ks, namespace=_ns(match[0]))
        spec = dataclasses.replace(spec, traffic=TrafficRouting(None, ks, spec.traffic.managed_routes))
        for i in isvcs:
            store.put(kserve.GROUP, kserve.PLURAL, dict(i), _ns(i))
        return kserve.KServeRouter(store, ks, DEFAULT_NAMESPACE, read_back="spec"), spec
    raise PlanError("nothing to plan against: give a file of VirtualServices (or InferenceServices)")


def plan_rollout(spec: RolloutSpec, virtualservices: Sequence[Mapping[str, Any]] = (),
                 inferenceservices: Sequence[Mapping[str, Any]] = (), *, stable: str | None = None,
                 canary: str | None = None, start: datetime | None = None) -> list[PlanRow]:
    """One row per completed step, then one for the promoted state; raises PlanError."""
    if stable:
        spec = dataclasses.replace(spec, stable=Destination(host=stable))
    if canary:
        spec = dataclasses.replace(spec, canary=Destination(host=canary))
    store = MemoryObjects()
    router, spec = _router(spec, store, virtualservices, inferenceservices)

    def snapshot(kind: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        group, plural = (istio.GROUP, istio.PLURAL) if kind == "vs" else (kserve.GROUP, kserve.PLURAL)
        return [store.get(group, "", plural, _ns(o), _name(o)) or dict(o) for o in items]

    now = start or datetime(2026, 1, 1, tzinfo=UTC)
    status = RolloutStatus()
    verdicts: dict[str, Verdict] = {}
    rows: list[PlanRow] = []
    promotions = 0
    for _ in range(MAX_PASSES):
        d = decide(spec, status, Facts(verdicts=verdicts), now)
        before, after = status.current_step_index, d.status.current_step_index
        if before is not None and after is not None and after > before and status.step_started_at is not None:
            for i in range(before, min(after, len(spec.steps))):
                rows.append(PlanRow(i, spec.steps[i].raw, spec.steps[i].describe(), status.verified_weight or 0,
                                    snapshot("vs", virtualservices), snapshot("isvc", inferenceservices),
                                    list(status.routes)))
        try:
            obs: TrafficObservation = router.apply(d.traffic)
        except RouterError as exc:
            raise PlanError(str(exc)) from None
        status = record_traffic(d.status, obs, now)
        for a in d.actions:
            if isinstance(a, EnsureAnalysisRun):
                verdicts[a.name] = Verdict(Phase.SUCCESSFUL, "assumed Successful by the plan")
        if status.promoted:
            if status.traffic_problems or status.verified_weight != d.traffic.weight:
                raise PlanError("; ".join(status.traffic_problems) or "the promoted traffic did not read back")
            rows.append(PlanRow("promoted", None, "promoted: the canary has all traffic", status.verified_weight or 0,
                                snapshot("vs", virtualservices), snapshot("isvc", inferenceservices),
                                list(status.routes)))
            return rows
        if status.abort:
            raise PlanError(f"the rollout aborted: {status.abort_message}")
        if d.requeue_after is None:
            if not status.pause_conditions:
                raise PlanError(f"the rollout is stuck: {status.message}")
            promotions += 1  # an indefinite pause: a person promotes
            spec = dataclasses.replace(spec, requests=dataclasses.replace(spec.requests, promote=f"plan-{promotions}"))
        elif d.requeue_after > 0:
            now = now + timedelta(seconds=d.requeue_after)
    raise PlanError("the plan did not finish (too many passes)")
