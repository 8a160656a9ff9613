"""KServe router: the canary's share through ``canaryTrafficPercent`` (traffic-semantics.md §5.2).

KServe (Knative mode) splits a component's traffic between its latest ready revision
(``canaryTrafficPercent`` %) and the last rolled-out one (the rest). So a rollout here:

* writes ``spec.predictor.canaryTrafficPercent`` step by step (0..100);
* promotes by **removing** the field (KServe then rolls the latest revision out at 100 % and
  records it as ``latestRolledoutRevision``);
* rolls back with **0** (all traffic to the previous rolled-out revision). After a promotion this
  takes KServe two reconciles, which the read-back shows as "not yet";
* reads the share back from ``status.components.predictor.traffic``: the percent of the targets
  that resolve to the latest created revision (a ``latestRevision: true`` target is the latest
  *ready* revision, so a canary that is not ready yet gets 0 there, whatever the spec says).

Writes are JSON patches guarded by a ``test`` of the whole ``spec.predictor``: the percentage
means nothing if someone changed the model under it (that makes a new "latest" revision).
Nothing else in the InferenceService is touched; any other template or annotation change would
create a new revision mid-rollout.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyzer.core.steps import KServeRouting, TrafficObservation, TrafficState
from analyzer.ports import CustomObjects, RouterError, WriteConflict

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
FIELD = "canaryTrafficPercent"


class KServeError(RouterError):
    """The InferenceService cannot be driven as asked."""


def _component(isvc: Mapping[str, Any], component: str) -> Mapping[str, Any]:
    spec = isvc.get("spec")
    comp = spec.get(component) if isinstance(spec, Mapping) else None
    if not isinstance(comp, Mapping):
        meta = isvc.get("metadata") or {}
        raise KServeError(f"InferenceService {meta.get('name', '?')} has no spec.{component}")
    return comp


def wanted_percent(state: TrafficState) -> int | None:
    """The field's value for ``state``: None (removed) once promoted."""
    if state.promoted:
        return None
    if not 0 <= state.weight <= 100:
        raise KServeError(f"canaryTrafficPercent must be within 0..100, got {state.weight}")
    return state.weight


def apply_traffic(isvc: Mapping[str, Any], state: TrafficState, component: str = "predictor") -> dict[str, Any]:
    """The InferenceService as it must be for ``state`` (a new dict)."""
    if state.header_routes or state.mirror_routes:
        raise KServeError("KServe's canaryTrafficPercent has no header or mirror routes")
    _component(isvc, component)
    new: dict[str, Any] = copy.deepcopy(dict(isvc))
    comp = new["spec"][component]
    want = wanted_percent(state)
    if want is None:
        comp.pop(FIELD, None)
    else:
        comp[FIELD] = want
    return new


def json_patch(old: Mapping[str, Any], new: Mapping[str, Any], component: str = "predictor") -> list[dict[str, Any]]:
    a, b = _component(old, component), _component(new, component)
    if a == b:
        return []
    ops: list[dict[str, Any]] = [{"op": "test", "path": f"/spec/{component}", "value": copy.deepcopy(dict(a))}]
    if FIELD in b:
        ops.append({"op": "add", "path": f"/spec/{component}/{FIELD}", "value": b[FIELD]})
    else:
        ops.append({"op": "remove", "path": f"/spec/{component}/{FIELD}"})
    return ops


@dataclass(frozen=True)
class KServeTraffic:
    canary: int | None  # percent reaching the latest created revision, None if unknown
    latest_created: str
    latest_ready: str
    latest_rolledout: str
    previous_rolledout: str
    problems: tuple[str, ...] = ()


def read_traffic(isvc: Mapping[str, Any], component: str = "predictor") -> KServeTraffic:
    meta = isvc.get("metadata") or {}
    name = meta.get("name", "?")
    status = isvc.get("status") or {}
    comp = (status.get("components") or {}).get(component) or {}
    latest_created = str(comp.get("latestCreatedRevision") or "")
    latest_ready = str(comp.get("latestReadyRevision") or "")
    rolled = str(comp.get("latestRolledoutRevision") or "")
    previous = str(comp.get("previousRolledoutRevision") or "")
    problems: list[str] = []
    if status.get("observedGeneration") is not None and meta.get("generation") is not None \
            and status.get("observedGeneration") != meta.get("generation"):
        problems.append(f"InferenceService {name}: status is for generation {status.get('observedGeneration')}, "
                        f"the spec is at {meta.get('generation')}")
    traffic = comp.get("traffic")
    if not isinstance(traffic, list) or not traffic:
        problems.append(f"InferenceService {name}: no status.components.{component}.traffic yet")
        return KServeTraffic(None, latest_created, latest_ready, rolled, previous, tuple(problems))
    canary_rev = latest_created or latest_ready
    canary = 0
    for t in traffic:
        if not isinstance(t, Mapping):
            continue
        rev = latest_ready if t.get("latestRevision") else str(t.get("revisionName") or "")
        if rev and rev == canary_rev:
            canary += int(t.get("percent") or 0)
    if latest_created and latest_ready and latest_created != latest_ready:
        problems.append(f"InferenceService {name}: revision {latest_created} is not ready yet "
                        f"(traffic stays on {latest_ready})")
    return KServeTraffic(canary, latest_created, latest_ready, rolled, previous, tuple(problems))


def observe(isvc: Mapping[str, Any], state: TrafficState, component: str = "predictor",
            read_back: str = "status") -> TrafficObservation:
    """``read_back="status"``: what KServe reports routing (the real check); ``"spec"``: the
    field as written (offline plans, where no KServe controller answers)."""
    if read_back == "spec":
        comp = _component(isvc, component)
        value = comp.get(FIELD)
        return TrafficObservation(100 if value is None else int(value))
    t = read_traffic(isvc, component)
    problems = list(t.problems)
    want = wanted_percent(state)
    if not t.latest_rolledout and want not in (None, 100) and not problems:
        problems.append("no rolled-out revision yet: KServe gives the latest revision all traffic until a first "
                        "rollout completes, so there is nothing to split against")
    return TrafficObservation(t.canary, frozenset(), tuple(problems))


class KServeRouter:
    """Implements :class:`~analyzer.ports.TrafficRouter` for one InferenceService."""

    def __init__(self, api: CustomObjects, routing: KServeRouting, namespace: str, *, version: str = VERSION,
                 max_conflicts: int = 5, read_back: str = "status") -> None:
        self.api = api
        self.routing = routing
        self.namespace = routing.namespace or namespace
        self.version = version
        self.max_conflicts = max_conflicts
        self.read_back = read_back

    def _get(self) -> dict[str, Any]:
        obj = self.api.get(GROUP, self.version, PLURAL, self.namespace, self.routing.inference_service)
        if obj is None:
            raise KServeError(f"InferenceService {self.namespace}/{self.routing.inference_service} not found")
        return obj

    def apply(self, state: TrafficState) -> TrafficObservation:
        for _ in range(self.max_conflicts):
            isvc = self._get()
            ops = json_patch(isvc, apply_traffic(isvc, state, self.routing.component), self.routing.component)
            if not ops:
                break
            try:
                self.api.json_patch(GROUP, self.version, PLURAL, self.namespace, self.routing.inference_service, ops)
                break
            except WriteConflict:
                continue
        else:
            raise KServeError(f"InferenceService {self.namespace}/{self.routing.inference_service}: gave up after "
                              f"{self.max_conflicts} conflicting writes by others")
        return self.observe(state)

    def observe(self, state: TrafficState) -> TrafficObservation:
        return observe(self._get(), state, self.routing.component, self.read_back)
