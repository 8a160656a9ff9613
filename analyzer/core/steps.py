"""The rollout step engine, pure: (spec, status, facts, now) -> Decision.

Argo Rollouts' canary semantics (traffic-semantics.md §1) for a rollout whose stable and canary
versions are separate destinations (hosts or subsets) behind a traffic router:

* ``setWeight`` raises the canary's share only once the canary has capacity for it (enough ready
  replicas, see :func:`required_canary_replicas`); until then the previous ``setWeight`` value is
  held. The step completes when the router has read the new weight back.
* ``pause`` without a duration waits for a person (``promote``); with one, until it has elapsed.
* ``analysis`` runs until its verdict: Successful -> next step; Failed or Error -> abort;
  Inconclusive -> pause with the reason, until a person promotes (next step) or aborts.
* ``setHeaderRoute`` / ``setMirrorRoute`` add (or, without ``match``, remove) managed routes; they
  stay until the end of the rollout or an abort.
* ``setCanaryScale`` sets the capacity the canary must have (``replicas``, ``weight`` % of the
  stable's size, or ``matchTrafficWeight``); it never moves traffic.
* Background analysis runs from ``startingStep`` until the end; Failed/Error aborts,
  Inconclusive pauses.
* abort: all traffic to stable, managed routes removed, step index back to 0, runs terminated,
  phase Degraded with the reason. retry: starts again at step 0 with new analysis runs.
  promote: skips the current step (or ends a pause / an Inconclusive pause); promoteFull: goes
  to the end (the canary still gets 100 % only once it has the capacity for it).
* End of the rollout: the canary gets 100 %, then the managed routes are removed and the phase is
  Healthy ("promoted"). With separate destinations there is no selector switch: the canary *is*
  the new version; making it the next rollout's stable is a spec change.

Everything is level-based, so a pass can be repeated or interrupted anywhere: the decision always
carries the complete traffic state wanted now (the router applies it idempotently, reads it back
and :func:`record_traffic` stores what it saw), and the analysis runs that must exist now (the
caller creates a missing one under its deterministic name). A step completes only once the
traffic read back equals the traffic wanted. Operator requests are one-shot tokens in the spec,
acted on once and remembered in ``status.handledRequests``.

The caller's loop: ``decide`` -> act (router, analysis runs, scaling) -> ``record_traffic`` ->
write status -> if ``requeue_after == 0`` decide again at once, else wake after that many
seconds (None: only on a change of the rollout, its analysis runs or its workloads).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from analyzer.core.model import Phase

# How long to wait before looking again, in seconds.
CAPACITY_POLL = 10.0
TRAFFIC_RECHECK = 2.0
DEFAULT_PROGRESS_DEADLINE = 600.0
MAX_WEIGHT = 100
MAX_COMPLETED_RUNS = 10  # completed analysis runs kept in the status


# --------------------------------------------------------------------------- spec model


class MatchKind(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True)
class StringMatch:
    kind: MatchKind
    value: str

    def to_json(self) -> dict[str, str]:
        return {str(self.kind): self.value}


@dataclass(frozen=True)
class HeaderMatch:
    header: str
    value: StringMatch


@dataclass(frozen=True)
class HeaderRoute:
    """A managed route sending requests that carry one of the headers to the canary only.

    The entries are ORed, as in Argo's Istio router (one match block per entry)."""

    name: str
    match: tuple[HeaderMatch, ...] = ()  # empty: the step removes the route


@dataclass(frozen=True)
class MirrorMatch:
    """One match block; its conditions are ANDed, blocks are ORed."""

    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()


@dataclass(frozen=True)
class MirrorRoute:
    """A managed route that serves matching requests at the current split and mirrors
    ``percentage`` % of them to the canary."""

    name: str
    match: tuple[MirrorMatch, ...] = ()  # empty: the step removes the route
    percentage: float = 100.0


@dataclass(frozen=True)
class TemplateRef:
    name: str
    cluster_scope: bool = False


@dataclass(frozen=True)
class AnalysisArg:
    name: str
    value: str | None = None
    value_from: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class AnalysisSpec:
    """An ``analysis`` step or the background analysis (Argo's RolloutAnalysis).

    ``raw`` is the block as written (``dryRun``, ``measurementRetention``,
    ``analysisRunMetadata`` pass through to the run)."""

    templates: tuple[TemplateRef, ...]
    args: tuple[AnalysisArg, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(t.name for t in self.templates)


@dataclass(frozen=True)
class CanaryScale:
    """Argo's ``setCanaryScale``: exactly one of the three."""

    replicas: int | None = None
    weight: int | None = None
    match_traffic_weight: bool = False


class StepKind(StrEnum):
    SET_WEIGHT = "setWeight"
    PAUSE = "pause"
    ANALYSIS = "analysis"
    SET_HEADER_ROUTE = "setHeaderRoute"
    SET_MIRROR_ROUTE = "setMirrorRoute"
    SET_CANARY_SCALE = "setCanaryScale"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    raw: Mapping[str, Any] = field(default_factory=dict)  # the step as written
    weight: int | None = None
    pause_seconds: float | None = None  # PAUSE: None waits for a person
    analysis: AnalysisSpec | None = None
    header_route: HeaderRoute | None = None
    mirror_route: MirrorRoute | None = None
    canary_scale: CanaryScale | None = None

    def describe(self) -> str:
        if self.kind is StepKind.SET_WEIGHT:
            return f"setWeight: {self.weight}"
        if self.kind is StepKind.PAUSE:
            return "pause" if self.pause_seconds is None else f"pause: {_seconds_text(self.pause_seconds)}"
        if self.kind is StepKind.ANALYSIS and self.analysis is not None:
            return f"analysis: {self.analysis.describe()}"
        if self.kind is StepKind.SET_HEADER_ROUTE and self.header_route is not None:
            return f"setHeaderRoute: {self.header_route.name}" + ("" if self.header_route.match else " (remove)")
        if self.kind is StepKind.SET_MIRROR_ROUTE and self.mirror_route is not None:
            return f"setMirrorRoute: {self.mirror_route.name}" + ("" if self.mirror_route.match else " (remove)")
        if self.kind is StepKind.SET_CANARY_SCALE and self.canary_scale is not None:
            s = self.canary_scale
            if s.match_traffic_weight:
                return "setCanaryScale: matchTrafficWeight"
            return f"setCanaryScale: replicas {s.replicas}" if s.replicas is not None else f"setCanaryScale: weight {s.weight}"
        return str(self.kind)


def _seconds_text(seconds: float) -> str:
    s = int(seconds)
    if s and s % 3600 == 0:
        return f"{s // 3600}h"
    if s and s % 60 == 0:
        return f"{s // 60}m"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class BackgroundAnalysis:
    analysis: AnalysisSpec
    starting_step: int = 0


@dataclass(frozen=True)
class WorkloadRef:
    """The workload behind a destination, for capacity facts (e.g. a Deployment)."""

    kind: str
    name: str
    api_version: str = "apps/v1"


@dataclass(frozen=True)
class Destination:
    """Where stable or canary traffic goes: a host (host-level split) and/or a subset of a
    DestinationRule (subset-level split)."""

    host: str | None = None
    subset: str | None = None
    workload: WorkloadRef | None = None

    def describe(self) -> str:
        if self.subset and self.host:
            return f"{self.host} (subset {self.subset})"
        return self.host or f"subset {self.subset}"


@dataclass(frozen=True)
class TLSRouteRef:
    port: int | None = None
    sni_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class TCPRouteRef:
    port: int | None = None


@dataclass(frozen=True)
class VirtualServiceRef:
    """One VirtualService the rollout drives; ``name.namespace`` is split into the two.

    No route given at all: the weighted routes are found by their destinations (the routes that
    hold both the stable and the canary destination), which must be unambiguous."""

    name: str
    namespace: str | None = None
    routes: tuple[str, ...] = ()
    tls_routes: tuple[TLSRouteRef, ...] = ()
    tcp_routes: tuple[TCPRouteRef, ...] = ()

    @property
    def auto(self) -> bool:
        return not (self.routes or self.tls_routes or self.tcp_routes)


@dataclass(frozen=True)
class IstioRouting:
    virtual_services: tuple[VirtualServiceRef, ...]
    destination_rule: str | None = None


@dataclass(frozen=True)
class KServeRouting:
    inference_service: str
    namespace: str | None = None
    component: str = "predictor"


@dataclass(frozen=True)
class HAProxyRouting:
    """One HAProxy backend with a stable and a canary server, driven through the runtime API
    (``socket``); header routes are entries of ``header_map`` (value of ``header`` -> the
    canary-only backend ``canary_backend``)."""

    socket: str
    backend: str = "be_app"
    stable_server: str = "stable"
    canary_server: str = "canary"
    header_map: str | None = None
    header: str = "x-model-version"
    canary_backend: str = "be_canary"


@dataclass(frozen=True)
class TrafficRouting:
    istio: IstioRouting | None = None
    kserve: KServeRouting | None = None
    managed_routes: tuple[str, ...] = ()  # precedence order of managed routes (Argo managedRoutes)
    haproxy: HAProxyRouting | None = None


@dataclass(frozen=True)
class CapacityPolicy:
    """The capacity gate. ``min_ready_replicas``: the canary needs at least this many ready
    replicas before it gets any traffic. ``scale_canary``: scale a canary that no autoscaler
    manages up to the required count (never down, never one an HPA/KEDA manages)."""

    min_ready_replicas: int = 1
    progress_deadline_seconds: float = DEFAULT_PROGRESS_DEADLINE
    progress_deadline_abort: bool = False
    scale_canary: bool = False


@dataclass(frozen=True)
class Requests:
    """One-shot operator requests: a non-empty token different from the handled one acts once."""

    promote: str = ""
    promote_full: str = ""
    abort: str = ""
    retry: str = ""

    def items(self) -> tuple[tuple[str, str], ...]:
        # The order requests are acted on when several arrive together.
        return (("abort", self.abort), ("retry", self.retry), ("promoteFull", self.promote_full),
                ("promote", self.promote))


@dataclass(frozen=True)
class RolloutSpec:
    name: str
    stable: Destination
    canary: Destination
    steps: tuple[Step, ...] = ()
    traffic: TrafficRouting = field(default_factory=TrafficRouting)
    background: BackgroundAnalysis | None = None
    capacity: CapacityPolicy = field(default_factory=CapacityPolicy)
    judge: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    requests: Requests = field(default_factory=Requests)
    namespace: str | None = None
    kind: str = "ModelRollout"
    generation: int = 0
    # Identity of "this update" (destinations, routing and steps): a change restarts at step 0.
    update_hash: str = ""

    def managed_route_names(self) -> tuple[str, ...]:
        """Every route name the rollout may manage, in precedence order (managedRoutes first,
        then names from the steps in order of appearance)."""
        names = list(self.traffic.managed_routes)
        for s in self.steps:
            route = s.header_route or s.mirror_route
            if route is not None and route.name not in names:
                names.append(route.name)
        return tuple(names)


# --------------------------------------------------------------------------- status model


class RolloutPhase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"


class PauseReason(StrEnum):
    CANARY_PAUSE_STEP = "CanaryPauseStep"
    INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysisRun"


class RunKind(StrEnum):
    STEP = "Step"
    BACKGROUND = "Background"


@dataclass
class PauseCondition:
    reason: PauseReason
    start_time: datetime
    message: str = ""


@dataclass
class AnalysisRunRecord:
    """One analysis run of this rollout as the status shows it. ``detail`` is the run's own
    status (metric results with their measurements) as the caller last read it."""

    name: str
    kind: RunKind
    step_index: int | None
    phase: str = "Pending"
    message: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None
    terminated: bool = False
    detail: Mapping[str, Any] | None = None

    @property
    def completed(self) -> bool:
        return self.phase in _COMPLETED_PHASES


_COMPLETED_PHASES = {str(p) for p in (Phase.SUCCESSFUL, Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE)}


@dataclass
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: datetime
    last_update_time: datetime


@dataclass
class RolloutStatus:
    observed_generation: int = 0
    phase: RolloutPhase = RolloutPhase.PROGRESSING
    message: str = ""
    current_step_index: int | None = None
    update_hash: str = ""
    attempt: int = 1  # +1 per retry: new analysis runs
    desired_weight: int = 0  # canary share the router is asked to hold
    verified_weight: int | None = None  # canary share last read back from the router
    verified_at: datetime | None = None
    routes: list[str] = field(default_factory=list)  # managed routes last read back as present
    traffic_problems: list[str] = field(default_factory=list)  # why the read-back is not the wanted state
    pause_conditions: list[PauseCondition] = field(default_factory=list)
    controller_pause: bool = False
    abort: bool = False
    aborted_at: datetime | None = None
    abort_message: str = ""
    promote_full: bool = False
    promoted: bool = False  # this update is complete: the canary has all traffic
    step_started_at: datetime | None = None
    reference_replicas: int | None = None  # stable size that serves 100 % (capacity gate)
    background_runs: int = 0  # background runs started in this attempt (a promote after Inconclusive starts another)
    analysis_runs: list[AnalysisRunRecord] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    handled_requests: dict[str, str] = field(default_factory=dict)

    def condition(self, type_: str) -> Condition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None

    def run(self, name: str) -> AnalysisRunRecord | None:
        for r in self.analysis_runs:
            if r.name == name:
                return r
        return None

    def pause_condition(self, reason: PauseReason) -> PauseCondition | None:
        for p in self.pause_conditions:
            if p.reason == reason:
                return p
        return None


# --------------------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class Verdict:
    """The latest state of one analysis run (from ``core.analysis`` or an AnalysisRun object)."""

    phase: Phase
    message: str = ""
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CapacityFacts:
    """What the workloads look like now.

    ``canary_ready``: ready (available) canary replicas; ``canary_desired``: the replica count
    the canary workload is asked for now (by us, an HPA or KEDA); ``stable_replicas``: the
    stable's ready replicas; ``autoscaler``: e.g. ``HorizontalPodAutoscaler/inference-v2`` when an
    autoscaler manages the canary's replica count (then we never scale it)."""

    canary_ready: int
    canary_desired: int
    stable_replicas: int
    autoscaler: str | None = None


@dataclass(frozen=True)
class Facts:
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)  # run name -> latest verdict
    capacity: CapacityFacts | None = None  # None: not known / not applicable (e.g. KServe, offline plan)


@dataclass(frozen=True)
class TrafficState:
    """The complete traffic state wanted now: the canary's share (0..100) and the managed routes.
    ``managed`` lists every route the rollout may manage (precedence order): those not in
    ``header_routes``/``mirror_routes`` must be absent."""

    weight: int
    header_routes: tuple[HeaderRoute, ...] = ()
    mirror_routes: tuple[MirrorRoute, ...] = ()
    managed: tuple[str, ...] = ()
    promoted: bool = False  # the update is complete (KServe: canaryTrafficPercent removed)

    def route_names(self) -> frozenset[str]:
        return frozenset(r.name for r in self.header_routes) | frozenset(r.name for r in self.mirror_routes)


@dataclass(frozen=True)
class TrafficObservation:
    """What the router read back. ``weight`` is None when it could not be read or the routes
    disagree; ``problems`` say why the traffic is not the state that was asked for."""

    weight: int | None
    routes: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnsureAnalysisRun:
    """This run must exist (create it under this name if it does not; idempotent)."""

    name: str
    kind: RunKind
    step_index: int | None
    analysis: AnalysisSpec


@dataclass(frozen=True)
class TerminateAnalysisRun:
    name: str
    reason: str


@dataclass(frozen=True)
class ScaleCanary:
    """Scale the (not autoscaled) canary workload up to ``replicas``."""

    replicas: int


Action = EnsureAnalysisRun | TerminateAnalysisRun | ScaleCanary


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    traffic: TrafficState
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # 0: decide again now; None: nothing time-based to wait for


@dataclass(frozen=True)
class CapacityCheck:
    """Whether the canary can take a weight: the ready replicas it needs, a sentence saying why
    not, and the count to scale a non-autoscaled canary to (when the policy allows it)."""

    ok: bool
    need: int
    message: str = ""
    scale_to: int | None = None


# --------------------------------------------------------------------------- helpers on steps


def weight_at(steps: tuple[Step, ...], index: int | None) -> int:
    """Argo's GetCurrentSetWeight: the last setWeight at or before ``index``; 0 before any,
    100 once every step is done."""
    if index is None or index >= len(steps):
        return MAX_WEIGHT
    for i in range(index, -1, -1):
        if steps[i].kind is StepKind.SET_WEIGHT and steps[i].weight is not None:
            return steps[i].weight or 0
    return 0


def previous_weight(steps: tuple[Step, ...], index: int) -> int:
    """The setWeight in force before step ``index`` (what is held while capacity is missing)."""
    for i in range(min(index, len(steps)) - 1, -1, -1):
        if steps[i].kind is StepKind.SET_WEIGHT and steps[i].weight is not None:
            return steps[i].weight or 0
    return 0


def canary_scale_at(steps: tuple[Step, ...], index: int | None) -> CanaryScale | None:
    """Argo's UseSetCanaryScale: the last setCanaryScale at or before ``index``, unless it is
    ``matchTrafficWeight``; none once every step is done."""
    if index is None or index >= len(steps):
        return None
    for i in range(index, -1, -1):
        s = steps[i].canary_scale
        if steps[i].kind is StepKind.SET_CANARY_SCALE and s is not None:
            return None if s.match_traffic_weight else s
    return None


def routes_at(spec: RolloutSpec, index: int | None) -> tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]]:
    """Managed routes wanted after the steps up to ``index`` (inclusive; all steps once done):
    the last setHeaderRoute/setMirrorRoute per name wins, one without match removes it."""
    last = len(spec.steps) - 1 if index is None or index >= len(spec.steps) else index
    headers: dict[str, HeaderRoute] = {}
    mirrors: dict[str, MirrorRoute] = {}
    for s in spec.steps[: last + 1]:
        if s.kind is StepKind.SET_HEADER_ROUTE and s.header_route is not None:
            headers.pop(s.header_route.name, None)
            if s.header_route.match:
                headers[s.header_route.name] = s.header_route
        elif s.kind is StepKind.SET_MIRROR_ROUTE and s.mirror_route is not None:
            mirrors.pop(s.mirror_route.name, None)
            if s.mirror_route.match:
                mirrors[s.mirror_route.name] = s.mirror_route
    order = {n: i for i, n in enumerate(spec.managed_route_names())}
    return (tuple(sorted(headers.values(), key=lambda r: order.get(r.name, len(order)))),
            tuple(sorted(mirrors.values(), key=lambda r: order.get(r.name, len(order)))))


def run_name(spec: RolloutSpec, status: RolloutStatus, kind: RunKind, step_index: int | None) -> str:
    """Deterministic analysis run names: ``<rollout>-<update>-<attempt>-<step>`` (``-bg<n>``)."""
    base = f"{spec.name}-{(status.update_hash or 'x')[:8]}-{status.attempt}"
    if kind is RunKind.BACKGROUND:
        return f"{base}-bg" + (f"{status.background_runs}" if status.background_runs > 1 else "")
    return f"{base}-{step_index}"


def required_canary_replicas(spec: RolloutSpec, status: RolloutStatus, capacity: CapacityFacts | None,
                             weight: int, index: int | None) -> CapacityCheck:
    """How many ready canary replicas ``weight`` needs, and whether the canary has them.

    Not autoscaled: ``ceil(reference × share)``, where the reference is the stable's size that
    served 100 % when the update started (kept as the maximum seen) and the share is the weight,
    or what a setCanaryScale in force says. Autoscaled (HPA/KEDA): the autoscaler owns the count,
    so the canary must have what its autoscaler currently asks for. Both are raised to
    ``capacity.minReadyReplicas`` as soon as the canary gets any traffic."""
    scale = canary_scale_at(spec.steps, index)
    if capacity is None:
        return CapacityCheck(True, 0)
    if weight <= 0 and scale is None:
        return CapacityCheck(True, 0)
    ref = max(status.reference_replicas or 0, capacity.stable_replicas)
    minimum = spec.capacity.min_ready_replicas if weight > 0 else 0
    if capacity.autoscaler:
        need = max(capacity.canary_desired, minimum)
        if scale is not None and scale.replicas is not None:
            need = max(need, scale.replicas)
        why = (f"its autoscaler {capacity.autoscaler} asks for {capacity.canary_desired}"
               + (f", minimum {minimum}" if minimum > capacity.canary_desired else ""))
        ok = capacity.canary_ready >= need
        msg = "" if ok else (
            f"waiting for canary capacity: {capacity.canary_ready}/{need} ready replicas for weight {weight} "
            f"({why}); the autoscaler owns the canary's size, so it is not scaled by the rollout")
        return CapacityCheck(ok, need, msg)
    if scale is not None and scale.replicas is not None:
        need, why = scale.replicas, f"setCanaryScale replicas {scale.replicas}"
    elif scale is not None and scale.weight is not None:
        need, why = math.ceil(ref * scale.weight / MAX_WEIGHT), f"setCanaryScale weight {scale.weight} % of {ref}"
    else:
        need, why = math.ceil(ref * weight / MAX_WEIGHT), f"{weight} % of the stable's {ref}"
    if need < minimum:
        need, why = minimum, f"minimum {minimum}"
    ok = capacity.canary_ready >= need
    scale_to = need if (spec.capacity.scale_canary and capacity.canary_desired < need) else None
    msg = "" if ok else f"waiting for canary capacity: {capacity.canary_ready}/{need} ready replicas for weight {weight} ({why})"
    return CapacityCheck(ok, need, msg, scale_to)


# --------------------------------------------------------------------------- the engine


class _Pass:
    """Working state of one decide() call."""

    def __init__(self, spec: RolloutSpec, status: RolloutStatus, facts: Facts, now: datetime) -> None:
        self.spec = spec
        self.st = status
        self.facts = facts
        self.now = now
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.requeue: float | None = None
        self.waiting: str = ""  # why the current step has not completed
        self.deadline_exceeded = False

    def wake(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event(reason, message, warning))

    def set_condition(self, type_: str, status: str, reason: str, message: str) -> None:
        c = self.st.condition(type_)
        if c is None:
            self.st.conditions.append(Condition(type_, status, reason, message, self.now, self.now))
            return
        if c.status != status:
            c.last_transition_time = self.now
        if (c.status, c.reason, c.message) != (status, reason, message):
            c.last_update_time = self.now
        c.status, c.reason, c.message = status, reason, message


def decide(spec: RolloutSpec, status: RolloutStatus, facts: Facts, now: datetime) -> Decision:
    """One decision. Pure; the input status is not modified."""
    p = _Pass(spec, copy.deepcopy(status), facts, now)
    st = p.st
    n = len(spec.steps)
    st.observed_generation = spec.generation

    if st.update_hash != spec.update_hash or st.step_started_at is None:
        _start_update(p)
        st = p.st
    if facts.capacity is not None and not st.promoted:
        st.reference_replicas = max(st.reference_replicas or 0, facts.capacity.stable_replicas)

    _fold_verdicts(p)
    _handle_requests(p)

    if not st.abort and not st.promoted:
        _check_analysis_verdicts(p)
    if st.abort:
        return _aborted(p)
    if st.promoted:
        return _promoted(p)

    index = st.current_step_index
    traffic_before = _wanted_traffic(p, index)
    settled = _settled(st, traffic_before)
    # A pause step's own condition does not halt it (its timer or a promote ends it); a manual
    # pause or an Inconclusive analysis halts everything.
    halted = spec.paused or st.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is not None

    if not halted:
        if index is None or index >= n or st.promote_full:
            if _end_reached(p, traffic_before, settled):
                return _promoted(p)
        else:
            _run_step(p, index, traffic_before, settled)
        if st.abort:  # the progress deadline may abort
            return _aborted(p)

    index = st.current_step_index
    traffic = _wanted_traffic(p, index)
    st.desired_weight = traffic.weight
    if not _settled(st, traffic) and p.requeue != 0:
        p.wake(TRAFFIC_RECHECK)
    _reconcile_runs(p)
    _set_phase(p)
    return Decision(st, traffic, tuple(p.actions), tuple(p.events), p.requeue)


def record_traffic(status: RolloutStatus, observation: TrafficObservation, now: datetime) -> RolloutStatus:
    """Store what the router read back (after it applied ``Decision.traffic``). Pure."""
    st = copy.deepcopy(status)
    if observation.weight is not None and observation.weight != st.verified_weight:
        st.verified_at = now
    st.verified_weight = observation.weight
    st.routes = sorted(observation.routes)
    st.traffic_problems = list(observation.problems)
    return st


def _settled(st: RolloutStatus, traffic: TrafficState) -> bool:
    return (not st.traffic_problems and st.verified_weight == traffic.weight
            and frozenset(st.routes) == traffic.route_names())


def _start_update(p: _Pass) -> None:
    """A new update (or the first sight of the rollout): start at step 0."""
    old, spec = p.st, p.spec
    fresh = old.update_hash == ""
    for r in old.analysis_runs:
        if not r.completed and not r.terminated:
            p.actions.append(TerminateAnalysisRun(r.name, "the rollout's update changed"))
    handled = dict(old.handled_requests)
    if fresh:  # requests already in the spec when we first see it are history, not orders
        handled.update({k: v for k, v in spec.requests.items() if v})
    p.st = RolloutStatus(
        observed_generation=spec.generation, update_hash=spec.update_hash,
        current_step_index=0 if spec.steps else None, step_started_at=p.now,
        desired_weight=old.desired_weight, verified_weight=old.verified_weight, verified_at=old.verified_at,
        routes=list(old.routes), traffic_problems=list(old.traffic_problems),
        conditions=old.conditions, handled_requests=handled,
        reference_replicas=p.facts.capacity.stable_replicas if p.facts.capacity else None,
    )
    p.set_condition("Progressing", "True", "RolloutUpdated", f"update {spec.update_hash[:8]} started")
    p.event("RolloutUpdated", f"starting update {spec.update_hash[:8]}: {spec.stable.describe()} -> "
                              f"{spec.canary.describe()}, {len(spec.steps)} steps")
    p.wake(0)


def _fold_verdicts(p: _Pass) -> None:
    for r in p.st.analysis_runs:
        v = p.facts.verdicts.get(r.name)
        if v is None:
            continue
        phase = str(v.phase)
        if phase != r.phase:
            if v.phase.completed:
                r.completed_at = p.now
                p.event(f"AnalysisRun{phase}", f"analysis run {r.name} is {phase}" + (f": {v.message}" if v.message else ""),
                        warning=v.phase in (Phase.FAILED, Phase.ERROR))
            if r.started_at is None and v.phase is not Phase.PENDING:
                r.started_at = p.now
        r.phase = phase
        r.message = v.message
        if v.detail is not None:
            r.detail = v.detail


def _abort(p: _Pass, message: str, reason: str = "RolloutAborted") -> None:
    st = p.st
    if st.abort:
        return
    st.abort = True
    st.aborted_at = p.now
    st.abort_message = message
    p.event(reason, f"Rollout aborted update {p.spec.update_hash[:8]}: {message}", warning=True)
    p.wake(0)


def _handle_requests(p: _Pass) -> None:
    st, spec = p.st, p.spec
    n = len(spec.steps)
    for kind, token in spec.requests.items():
        if not token or st.handled_requests.get(kind) == token:
            continue
        st.handled_requests[kind] = token
        p.wake(0)
        if kind == "abort":
            if st.promoted:
                p.event("RequestIgnored", "abort: the update is already complete (change the spec to roll back)")
            else:
                _abort(p, "aborted by request")
        elif kind == "retry":
            if not st.abort:
                p.event("RequestIgnored", "retry: the rollout is not aborted")
                continue
            st.abort = False
            st.abort_message = ""
            st.attempt += 1
            st.background_runs = 0
            st.current_step_index = 0 if n else None
            st.pause_conditions = []
            st.controller_pause = False
            st.promote_full = False
            st.step_started_at = p.now
            p.set_condition("Progressing", "Unknown", "RolloutRetry", "Retrying the rollout after abort")
            p.event("RolloutRetry", f"retrying from step 0 (attempt {st.attempt})")
        elif kind == "promoteFull":
            if st.promoted:
                continue
            st.abort = False
            st.abort_message = ""
            st.promote_full = True
            st.pause_conditions = []
            st.controller_pause = False
            if n:
                st.current_step_index = n
            st.step_started_at = p.now
            p.event("RolloutPromoteFull", "full promotion requested: skipping the remaining steps")
        elif kind == "promote":
            if st.abort:
                p.event("RequestIgnored", "promote: the rollout is aborted (use retry)")
            elif not st.promoted:
                _promote(p)


def _promote(p: _Pass) -> None:
    """kubectl argo rollouts promote: end a pause (an Inconclusive step analysis moves on to
    the next step), or else skip the current step."""
    st, n = p.st, len(p.spec.steps)
    index = st.current_step_index
    step_run = _current_step_run(p)
    if st.pause_conditions:
        inconclusive_step = (step_run is not None and step_run.phase == str(Phase.INCONCLUSIVE)
                             and st.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is not None)
        pausing_step = st.pause_condition(PauseReason.CANARY_PAUSE_STEP) is not None
        bg = _current_background_run(p)
        if bg is not None and bg.phase == str(Phase.INCONCLUSIVE):
            st.background_runs += 1  # Argo starts a new background run after the person's go-ahead
        st.pause_conditions = []
        st.controller_pause = False
        if (inconclusive_step or pausing_step) and index is not None and index < n:
            _advance(p, "promoted")
        p.event("RolloutResumed", "resumed by promote")
    elif index is not None and index < n:
        _advance(p, "skipped by promote")


def _advance(p: _Pass, how: str = "completed") -> None:
    st, spec = p.st, p.spec
    n = len(spec.steps)
    index = st.current_step_index
    if index is None or index >= n:
        return
    st.current_step_index = index + 1
    st.step_started_at = p.now
    st.pause_conditions = [c for c in st.pause_conditions if c.reason is not PauseReason.CANARY_PAUSE_STEP]
    if not st.pause_conditions:
        st.controller_pause = False
    p.event("RolloutStepCompleted", f"Rollout step {index + 1}/{n} {how} ({spec.steps[index].describe()})")
    p.wake(0)


def _current_step_run(p: _Pass) -> AnalysisRunRecord | None:
    index = p.st.current_step_index
    if index is None or index >= len(p.spec.steps) or p.spec.steps[index].kind is not StepKind.ANALYSIS:
        return None
    return p.st.run(run_name(p.spec, p.st, RunKind.STEP, index))


def _background_active(p: _Pass) -> bool:
    bg = p.spec.background
    if bg is None or not bg.analysis.templates:
        return False
    index = p.st.current_step_index
    return index is None or index >= bg.starting_step


def _current_background_run(p: _Pass) -> AnalysisRunRecord | None:
    if p.spec.background is None or p.st.background_runs == 0:
        return None
    return p.st.run(run_name(p.spec, p.st, RunKind.BACKGROUND, None))


def _check_analysis_verdicts(p: _Pass) -> None:
    step_run = _current_step_run(p)
    if step_run is not None and step_run.completed and not step_run.terminated:
        _judge(p, step_run, "Step-based analysis")
    bg = _current_background_run(p)
    if bg is not None and bg.completed and not bg.terminated and _background_active(p):
        _judge(p, bg, "Background analysis")


def _judge(p: _Pass, run: AnalysisRunRecord, what: str) -> None:
    st = p.st
    if run.phase in (str(Phase.FAILED), str(Phase.ERROR)):
        _abort(p, f"{what} phase {run.phase.lower()}" + (f": {run.message}" if run.message else ""))
    elif run.phase == str(Phase.INCONCLUSIVE):
        if st.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is None:
            why = f"{what} {run.name} is Inconclusive" + (f": {run.message}" if run.message else "")
            st.pause_conditions.append(PauseCondition(PauseReason.INCONCLUSIVE_ANALYSIS, p.now, why))
            st.controller_pause = True
            p.event("RolloutPaused", f"paused: {why}; promote to go on, abort to roll back", warning=True)


def _wanted_traffic(p: _Pass, index: int | None) -> TrafficState:
    """The traffic wanted at ``index`` (not aborted, not promoted)."""
    spec, st, cap = p.spec, p.st, p.facts.capacity
    n = len(spec.steps)
    managed = spec.managed_route_names()
    if cap is not None and cap.canary_ready == 0:
        # Argo: never weight a canary with no available pods, and drop its managed routes.
        return TrafficState(0, managed=managed)
    at_end = index is None or index >= n or st.promote_full
    target = MAX_WEIGHT if at_end else weight_at(spec.steps, index)
    weight = target
    if not required_canary_replicas(spec, st, cap, target, index).ok:
        # Hold the weight of the previous setWeight (promoteFull: the current one) until the
        # canary has the capacity for the new share.
        if st.promote_full:
            held = st.desired_weight
        else:
            held = previous_weight(spec.steps, n if index is None else min(index, n))
        weight = min(target, held)
    if spec.paused:
        weight = min(weight, st.desired_weight)  # a manual pause never raises the weight
    if st.promote_full:
        return TrafficState(weight, managed=managed)
    headers, mirrors = routes_at(spec, index)
    return TrafficState(weight, headers, mirrors, managed)


def _run_step(p: _Pass, index: int, traffic: TrafficState, settled: bool) -> None:
    spec, st, cap = p.spec, p.st, p.facts.capacity
    step = spec.steps[index]
    if step.kind is StepKind.SET_WEIGHT:
        target = step.weight or 0
        check = required_canary_replicas(spec, st, cap, target, index)
        if check.scale_to is not None and cap is not None and not cap.autoscaler:
            p.actions.append(ScaleCanary(check.scale_to))
        if traffic.weight != target or not check.ok:
            p.waiting = check.message or f"waiting for canary capacity for weight {target}"
            _capacity_wait(p, check)
        elif not settled:
            p.waiting = _traffic_wait_message(st, traffic)
        else:
            _advance(p)
    elif step.kind is StepKind.SET_CANARY_SCALE:
        check = required_canary_replicas(spec, st, cap, weight_at(spec.steps, index), index)
        if check.scale_to is not None and cap is not None and not cap.autoscaler:
            p.actions.append(ScaleCanary(check.scale_to))
        if not check.ok:
            p.waiting = check.message
            _capacity_wait(p, check)
        elif not settled:
            p.waiting = _traffic_wait_message(st, traffic)
        else:
            _advance(p)
    elif step.kind is StepKind.PAUSE:
        cond = st.pause_condition(PauseReason.CANARY_PAUSE_STEP)
        if not settled:
            p.waiting = _traffic_wait_message(st, traffic)
            return
        if cond is None:
            cond = PauseCondition(PauseReason.CANARY_PAUSE_STEP, p.now,
                                  "waiting for promote" if step.pause_seconds is None
                                  else f"pausing for {_seconds_text(step.pause_seconds)}")
            st.pause_conditions.append(cond)
            st.controller_pause = True
            p.event("RolloutPaused", f"step {index + 1}/{len(spec.steps)}: {step.describe()}")
        if step.pause_seconds is not None:
            end = cond.start_time + timedelta(seconds=step.pause_seconds)
            if p.now >= end:
                _advance(p)
            else:
                p.wake((end - p.now).total_seconds())
    elif step.kind is StepKind.ANALYSIS:
        run = _current_step_run(p)
        if run is not None and run.phase == str(Phase.SUCCESSFUL) and settled:
            _advance(p)
        elif run is None or not run.completed:
            p.waiting = f"running analysis {run_name(spec, st, RunKind.STEP, index)}"
    elif step.kind in (StepKind.SET_HEADER_ROUTE, StepKind.SET_MIRROR_ROUTE):
        if settled:
            _advance(p)
        else:
            p.waiting = _traffic_wait_message(st, traffic)


def _traffic_wait_message(st: RolloutStatus, traffic: TrafficState) -> str:
    if st.traffic_problems:
        return "traffic not yet as wanted: " + "; ".join(st.traffic_problems)
    seen = "unknown" if st.verified_weight is None else str(st.verified_weight)
    return f"waiting for the router: canary weight {traffic.weight} wanted, {seen} read back"


def _capacity_wait(p: _Pass, check: CapacityCheck) -> None:
    st, spec = p.st, p.spec
    p.wake(CAPACITY_POLL)
    started = st.step_started_at or p.now
    deadline = started + timedelta(seconds=spec.capacity.progress_deadline_seconds)
    if p.now >= deadline:
        p.deadline_exceeded = True
        msg = (f"canary did not get the capacity within {_seconds_text(spec.capacity.progress_deadline_seconds)}: "
               f"{check.message or 'capacity missing'}")
        p.waiting = msg
        if spec.capacity.progress_deadline_abort:
            _abort(p, msg, reason="ProgressDeadlineExceeded")
    else:
        p.wake((deadline - p.now).total_seconds())


def _end_reached(p: _Pass, traffic: TrafficState, settled: bool) -> bool:
    """After the last step (or promoteFull): full promotion once the canary holds 100 %."""
    st = p.st
    check = required_canary_replicas(p.spec, st, p.facts.capacity, MAX_WEIGHT, st.current_step_index)
    if check.scale_to is not None and p.facts.capacity is not None and not p.facts.capacity.autoscaler:
        p.actions.append(ScaleCanary(check.scale_to))
    if not check.ok or traffic.weight != MAX_WEIGHT:
        p.waiting = check.message or "waiting for canary capacity for full promotion"
        _capacity_wait(p, check)
        return False
    if not settled:
        p.waiting = _traffic_wait_message(st, traffic)
        return False
    st.promoted = True
    st.promote_full = False
    st.pause_conditions = []
    st.controller_pause = False
    p.event("RolloutCompleted", f"update {p.spec.update_hash[:8]} promoted: {p.spec.canary.describe()} has all traffic")
    p.wake(0)
    return True


def _aborted(p: _Pass) -> Decision:
    st, spec = p.st, p.spec
    st.current_step_index = 0 if spec.steps else None
    st.pause_conditions = []
    st.controller_pause = False
    st.promote_full = False
    traffic = TrafficState(0, managed=spec.managed_route_names())
    st.desired_weight = 0
    if not _settled(st, traffic):
        p.wake(TRAFFIC_RECHECK)
    _reconcile_runs(p)
    p.set_condition("Progressing", "False", "RolloutAborted",
                    f"Rollout aborted update {spec.update_hash[:8]}: {st.abort_message}")
    _set_phase(p)
    return Decision(st, traffic, tuple(p.actions), tuple(p.events), p.requeue)


def _promoted(p: _Pass) -> Decision:
    st, spec = p.st, p.spec
    st.current_step_index = len(spec.steps) if spec.steps else None
    traffic = TrafficState(MAX_WEIGHT, managed=spec.managed_route_names(), promoted=True)
    st.desired_weight = MAX_WEIGHT
    if not _settled(st, traffic):
        p.wake(TRAFFIC_RECHECK)
    _reconcile_runs(p)
    _set_phase(p)
    return Decision(st, traffic, tuple(p.actions), tuple(p.events), p.requeue)


def _reconcile_runs(p: _Pass) -> None:
    """The runs that must exist now get an EnsureAnalysisRun; the others are terminated."""
    st, spec = p.st, p.spec
    wanted: dict[str, EnsureAnalysisRun] = {}
    if not st.abort and not st.promoted and not st.promote_full:
        index = st.current_step_index
        if index is not None and index < len(spec.steps):
            analysis = spec.steps[index].analysis
            if spec.steps[index].kind is StepKind.ANALYSIS and analysis is not None:
                name = run_name(spec, st, RunKind.STEP, index)
                # Argo creates no run while the rollout is paused.
                if st.run(name) is not None or not (st.pause_conditions or spec.paused):
                    wanted[name] = EnsureAnalysisRun(name, RunKind.STEP, index, analysis)
        if spec.background is not None and _background_active(p):
            st.background_runs = max(st.background_runs, 1)
            name = run_name(spec, st, RunKind.BACKGROUND, None)
            if st.run(name) is not None or st.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is None:
                wanted[name] = EnsureAnalysisRun(name, RunKind.BACKGROUND, None, spec.background.analysis)
    for name, ensure in wanted.items():
        rec = st.run(name)
        if rec is None:
            st.analysis_runs.append(AnalysisRunRecord(name, ensure.kind, ensure.step_index))
            p.event("AnalysisRunCreated", f"analysis run {name} ({ensure.analysis.describe()})")
        if rec is None or not rec.completed:
            p.actions.append(ensure)
    why = ("the rollout was aborted" if st.abort else "the rollout was promoted" if st.promoted or st.promote_full
           else "its step is over")
    for rec in st.analysis_runs:
        if rec.name in wanted or rec.completed:
            continue
        if not rec.terminated:
            rec.terminated = True
            p.event("AnalysisRunTerminated", f"analysis run {rec.name} terminated: {why}")
        p.actions.append(TerminateAnalysisRun(rec.name, why))  # repeated until the run says it is done
    _trim_runs(st)


def _trim_runs(st: RolloutStatus, keep_completed: int = MAX_COMPLETED_RUNS) -> None:
    done = [r for r in st.analysis_runs if r.completed]
    drop = {id(r) for r in done[: max(0, len(done) - keep_completed)]}
    st.analysis_runs = [r for r in st.analysis_runs if id(r) not in drop]


def _set_phase(p: _Pass) -> None:
    """Argo's CalculateRolloutPhase order: aborted, deadline, manual pause, pause conditions,
    promoted, progressing."""
    st, spec = p.st, p.spec
    n = len(spec.steps)
    if st.abort:
        st.phase = RolloutPhase.DEGRADED
        st.message = f"RolloutAborted: {st.abort_message}"
    elif p.deadline_exceeded:
        st.phase = RolloutPhase.DEGRADED
        st.message = f"ProgressDeadlineExceeded: {p.waiting}"
        p.set_condition("Progressing", "False", "ProgressDeadlineExceeded", p.waiting)
    elif spec.paused:
        st.phase = RolloutPhase.PAUSED
        st.message = "manually paused"
        p.set_condition("Paused", "True", "RolloutPaused", "manually paused")
    elif st.pause_conditions:
        st.phase = RolloutPhase.PAUSED
        pc = st.pause_conditions[0]
        st.message = f"{pc.reason}: {pc.message}" if pc.message else str(pc.reason)
        p.set_condition("Paused", "True", str(pc.reason), st.message)
    elif st.promoted:
        st.phase = RolloutPhase.HEALTHY
        st.message = ""
        p.set_condition("Progressing", "True", "RolloutCompleted", "the canary has all traffic")
        p.set_condition("Completed", "True", "RolloutCompleted", f"update {spec.update_hash[:8]} promoted")
    else:
        st.phase = RolloutPhase.PROGRESSING
        index = st.current_step_index
        if index is None or index >= n:
            st.message = p.waiting or "waiting for full promotion"
        else:
            st.message = f"step {index + 1}/{n} ({spec.steps[index].describe()})" + (f": {p.waiting}" if p.waiting else "")
        if not st.abort:
            c = st.condition("Progressing")
            if c is None or c.reason in ("RolloutAborted", "ProgressDeadlineExceeded", "RolloutRetry"):
                p.set_condition("Progressing", "True", "RolloutProgressing", "the rollout is progressing")
    if not (spec.paused or st.pause_conditions):
        c = st.condition("Paused")
        if c is not None and c.status == "True":
            p.set_condition("Paused", "False", "RolloutResumed", "")
    if not st.promoted:
        c = st.condition("Completed")
        if c is not None and c.status == "True":
            p.set_condition("Completed", "False", "RolloutUpdated", "a new update is in progress")
