"""Our ``ModelRollout`` resource, or an Argo ``Rollout``, -> the step engine's typed spec.

Both kinds share the canary step syntax of Argo Rollouts (``spec.strategy.canary.steps`` for a
Rollout, ``spec.steps`` for a ModelRollout), accepted verbatim. Every problem is collected with
its field path (``file: spec.steps[2].pause.duration: reason``), as ``analyzer lint`` does for
templates.

ModelRollout (``rollouts.analyzer.dev/v1alpha1``, CRD in ``deploy/crd/modelrollout.yaml``)::

    spec:
      stable: {host: inference-v1, workloadRef: {kind: Deployment, name: inference-v1}}
      canary: {host: inference-v2}          # or {host: inference, subset: v2} (subset-level split)
      trafficRouting:
        istio:
          virtualServices: [{name: inference-routing, routes: [primary]}]   # routes optional
        # kserve: {inferenceService: model-v2-canary}
        # haproxy: {socket: /run/haproxy/admin.sock, backend: be_app, stableServer: stable,
        #           canaryServer: canary, headerMap: /etc/haproxy/header-routes.map}
        managedRoutes: [{name: pin-v2}]    # optional: precedence of managed routes
      steps: [...]                          # Argo canary steps
      analysis: {templates: [...], args: [...], startingStep: 2}   # background analysis
      judge: {...}                          # statistical judge settings (passed through)
      capacity: {minReadyReplicas: 1, progressDeadlineSeconds: 600, progressDeadlineAbort: false,
                 scaleCanary: false}
      paused: false
      requests: {promote: "<token>", promoteFull: "", abort: "", retry: ""}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analyzer.argo.errors import FieldError, Problems, TemplateError
from analyzer.argo.loader import load_documents
from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.steps import (
    DEFAULT_PROGRESS_DEADLINE,
    MAX_WEIGHT,
    AnalysisArg,
    AnalysisSpec,
    BackgroundAnalysis,
    CanaryScale,
    CapacityPolicy,
    Destination,
    HAProxyRouting,
    HeaderMatch,
    HeaderRoute,
    IstioRouting,
    KServeRouting,
    MatchKind,
    MirrorMatch,
    MirrorRoute,
    Requests,
    RolloutSpec,
    Step,
    StepKind,
    StringMatch,
    TCPRouteRef,
    TemplateRef,
    TLSRouteRef,
    TrafficRouting,
    VirtualServiceRef,
    WorkloadRef,
)

API_GROUP = "rollouts.analyzer.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ModelRollout"
PLURAL = "modelrollouts"
ARGO_API_VERSION = "argoproj.io/v1alpha1"
ARGO_KIND = "Rollout"

_STEP_KEYS = {"setWeight", "pause", "analysis", "setHeaderRoute", "setMirrorRoute", "setCanaryScale"}
_UNSUPPORTED_STEPS = {"experiment": "experiment steps are not supported (no Experiment controller here)",
                      "plugin": "step plugins are not supported"}
_ANALYSIS_KEYS = {"templates", "args", "dryRun", "measurementRetention", "analysisRunMetadata"}
_MR_SPEC = {"stable", "canary", "trafficRouting", "steps", "analysis", "judge", "capacity", "paused", "requests"}
_MR_DEST = {"host", "subset", "workloadRef"}
_MR_CAPACITY = {"minReadyReplicas", "progressDeadlineSeconds", "progressDeadlineAbort", "scaleCanary"}
_MR_REQUESTS = {"promote", "promoteFull", "abort", "retry"}
_VS_KEYS = {"name", "routes", "tlsRoutes", "tcpRoutes"}


class RolloutSpecError(TemplateError):
    """One or more problems in a rollout manifest; ``errors`` keeps them all."""


class _Errors(Problems):
    def mapping(self, value: Any, path: str, required: bool = False) -> Mapping[str, Any] | None:
        if value is None:
            if required:
                self.err(path, "required field is missing")
            return None
        if not isinstance(value, Mapping):
            self.err(path, f"must be a mapping, got {_type(value)}")
            return None
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, f"must be a list, got {_type(value)}")
            return []
        return value

    def string(self, value: Any, path: str, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.err(path, "required field is missing")
            return None
        if not isinstance(value, str):
            self.err(path, f"must be a string, got {_type(value)}")
            return None
        if required and not value:
            self.err(path, "must not be empty")
            return None
        return value

    def integer(self, value: Any, path: str, lo: int | None = None, hi: int | None = None) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"must be an integer, got {_type(value)}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.err(path, f"must be within {rng}, got {value}")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            self.err(path, f"must be true or false, got {_type(value)}")
            return None
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- entry points


def load_rollout(path: str | Path) -> tuple[RolloutSpec, list[FieldError]]:
    """The one ModelRollout or Rollout in a file (other documents, e.g. AnalysisTemplates, are
    skipped) and its warnings; raises RolloutSpecError."""
    source = str(path)
    docs = load_documents(path)
    found = [(i, d) for i, d in enumerate(docs) if d.get("kind") in (KIND, ARGO_KIND)]
    if not found:
        kinds = ", ".join(sorted({str(d.get("kind")) for d in docs}))
        raise RolloutSpecError(source, [FieldError("", f"no {KIND} or Argo {ARGO_KIND} in the file (found: {kinds})")])
    if len(found) > 1:
        raise RolloutSpecError(source, [FieldError("", f"{len(found)} rollouts in the file; give one per file")])
    index, doc = found[0]
    try:
        return parse_rollout(doc, source)
    except RolloutSpecError as exc:
        if len(docs) > 1:
            exc.errors = [FieldError(f"document[{index}].{e.path}" if e.path else f"document[{index}]",
                                     e.reason, e.warning) for e in exc.errors]
            exc.args = ("\n".join(e.render(source) for e in exc.errors),)
        raise


def parse_rollout(doc: Mapping[str, Any], source: str = "<input>") -> tuple[RolloutSpec, list[FieldError]]:
    """A ModelRollout or an Argo Rollout document -> (spec, warnings); raises RolloutSpecError."""
    e = _Errors()
    kind = doc.get("kind")
    api = doc.get("apiVersion")
    if kind == KIND:
        if api != API_VERSION:
            e.err("apiVersion", f"must be {API_VERSION}, got {api!r}")
        spec = _parse_model_rollout(doc, e)
    elif kind == ARGO_KIND:
        if api != ARGO_API_VERSION:
            e.err("apiVersion", f"must be {ARGO_API_VERSION}, got {api!r}")
        spec = _parse_argo_rollout(doc, e)
    else:
        e.err("kind", f"must be {KIND} or {ARGO_KIND}, got {kind!r}")
        spec = None
    if e.errors or spec is None:
        raise RolloutSpecError(source, e.errors or [FieldError("", "not a rollout")])
    return spec, e.warnings


def update_hash(*parts: Any) -> str:
    """Identity of one update (destinations, template, steps): canonical JSON, sha256."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- metadata


def _metadata(doc: Mapping[str, Any], e: _Errors) -> tuple[str, str | None, int]:
    meta = e.mapping(doc.get("metadata"), "metadata", required=True) or {}
    name = e.string(meta.get("name"), "metadata.name", required=True) or ""
    namespace = e.string(meta.get("namespace"), "metadata.namespace")
    generation = e.integer(meta.get("generation"), "metadata.generation", lo=0) or 0
    return name, namespace, generation


# --------------------------------------------------------------------------- ModelRollout


def _parse_model_rollout(doc: Mapping[str, Any], e: _Errors) -> RolloutSpec | None:
    e.unknown(doc, {"apiVersion", "kind", "metadata", "spec", "status"}, "")
    name, namespace, generation = _metadata(doc, e)
    spec = e.mapping(doc.get("spec"), "spec", required=True)
    if spec is None:
        return None
    e.unknown(spec, _MR_SPEC, "spec")
    steps = _steps(spec.get("steps"), e, "spec.steps")
    traffic = _model_traffic(spec.get("trafficRouting"), e, "spec.trafficRouting")
    needs_hosts = traffic.istio is not None
    stable = _destination(spec.get("stable"), e, "spec.stable", required=needs_hosts)
    canary = _destination(spec.get("canary"), e, "spec.canary", required=needs_hosts)
    if needs_hosts and stable is not None and canary is not None:
        _check_pair(stable, canary, e, "spec")
    background = _background(spec.get("analysis"), e, "spec.analysis", len(steps))
    judge = e.mapping(spec.get("judge"), "spec.judge") or {}
    capacity = _capacity(spec.get("capacity"), e, "spec.capacity")
    paused = e.boolean(spec.get("paused"), "spec.paused") or False
    requests = _requests(spec.get("requests"), e, "spec.requests")
    _check_routes(steps, traffic, e, "spec.steps", "spec.trafficRouting.managedRoutes",
                  has_istio=traffic.istio is not None, kserve=traffic.kserve is not None, haproxy=traffic.haproxy)
    if e.errors:
        return None
    assert stable is not None or not needs_hosts
    return RolloutSpec(
        name=name, namespace=namespace, kind=KIND, generation=generation,
        stable=stable or Destination(), canary=canary or Destination(), steps=tuple(steps), traffic=traffic,
        background=background, capacity=capacity, judge=dict(judge), paused=paused, requests=requests,
        update_hash=update_hash(spec.get("stable"), spec.get("canary"), spec.get("trafficRouting"), spec.get("steps")),
    )


def _destination(raw: Any, e: _Errors, path: str, required: bool) -> Destination | None:
    m = e.mapping(raw, path, required=required)
    if m is None:
        return None
    e.unknown(m, _MR_DEST, path)
    host = e.string(m.get("host"), f"{path}.host")
    subset = e.string(m.get("subset"), f"{path}.subset")
    if not host and not subset:
        e.err(path, "needs a host (host-level split) or a subset (subset-level split)")
    workload = None
    w = e.mapping(m.get("workloadRef"), f"{path}.workloadRef")
    if w is not None:
        e.unknown(w, {"apiVersion", "kind", "name"}, f"{path}.workloadRef")
        kind = e.string(w.get("kind"), f"{path}.workloadRef.kind", required=True)
        wname = e.string(w.get("name"), f"{path}.workloadRef.name", required=True)
        api = e.string(w.get("apiVersion"), f"{path}.workloadRef.apiVersion") or "apps/v1"
        if kind and wname:
            workload = WorkloadRef(kind, wname, api)
    return Destination(host or None, subset or None, workload)


def _check_pair(stable: Destination, canary: Destination, e: _Errors, path: str) -> None:
    if bool(stable.subset) != bool(canary.subset):
        e.err(f"{path}.canary", "stable and canary must both name a subset (subset-level) or neither (host-level)")
    elif (stable.host, stable.subset) == (canary.host, canary.subset):
        e.err(f"{path}.canary", f"is the same destination as stable ({stable.describe()})")


def _model_traffic(raw: Any, e: _Errors, path: str) -> TrafficRouting:
    m = e.mapping(raw, path, required=True)
    if m is None:
        return TrafficRouting()
    e.unknown(m, {"istio", "kserve", "haproxy", "managedRoutes"}, path)
    istio = _istio(m.get("istio"), e, f"{path}.istio", argo=False)
    kserve = None
    k = e.mapping(m.get("kserve"), f"{path}.kserve")
    if k is not None:
        e.unknown(k, {"inferenceService", "component"}, f"{path}.kserve")
        isvc = e.string(k.get("inferenceService"), f"{path}.kserve.inferenceService", required=True)
        component = e.string(k.get("component"), f"{path}.kserve.component") or "predictor"
        if component != "predictor":
            e.err(f"{path}.kserve.component", "only the predictor has canaryTrafficPercent")
        if isvc:
            n, _, ns = isvc.partition(".")
            kserve = KServeRouting(n, ns or None, component)
    haproxy = _haproxy(m.get("haproxy"), e, f"{path}.haproxy")
    given = [n for n, r in (("istio", istio), ("kserve", kserve), ("haproxy", haproxy)) if r is not None]
    if not given and not any(m.get(k) is not None for k in ("istio", "kserve", "haproxy")):
        e.err(path, "needs istio, kserve or haproxy")
    elif len(given) > 1:
        e.err(path, f"give {' or '.join(given)}, not {'both' if len(given) == 2 else 'all three'}")
    return TrafficRouting(istio, kserve, _managed_routes(m.get("managedRoutes"), e, f"{path}.managedRoutes"),
                          haproxy)


_HAPROXY_KEYS = {"socket": "socket", "backend": "backend", "stableServer": "stable_server",
                 "canaryServer": "canary_server", "headerMap": "header_map", "header": "header",
                 "canaryBackend": "canary_backend"}


def _haproxy(raw: Any, e: _Errors, path: str) -> HAProxyRouting | None:
    m = e.mapping(raw, path)
    if m is None:
        return None
    e.unknown(m, set(_HAPROXY_KEYS), path)
    values: dict[str, str] = {}
    for key, attr in _HAPROXY_KEYS.items():
        v = e.string(m.get(key), f"{path}.{key}", required=key == "socket")
        if v is not None and v == "":
            e.err(f"{path}.{key}", "must not be empty")
        elif v:
            values[attr] = v.lower() if key == "header" else v
    if "socket" not in values:
        return None
    return HAProxyRouting(**values)


def _managed_routes(raw: Any, e: _Errors, path: str) -> tuple[str, ...]:
    names: list[str] = []
    for i, r in enumerate(e.items(raw, path)):
        m = e.mapping(r, f"{path}[{i}]")
        if m is None:
            continue
        e.unknown(m, {"name"}, f"{path}[{i}]")
        n = e.string(m.get("name"), f"{path}[{i}].name", required=True)
        if n:
            if n in names:
                e.err(f"{path}[{i}].name", f"duplicate route name {n!r}")
            names.append(n)
    return tuple(names)


def _istio(raw: Any, e: _Errors, path: str, argo: bool) -> IstioRouting | None:
    m = e.mapping(raw, path)
    if m is None:
        return None
    e.unknown(m, {"virtualService", "virtualServices", "destinationRule"}, path)
    refs: list[VirtualServiceRef] = []
    if m.get("virtualService") is not None and m.get("virtualServices") is not None:
        e.err(path, "give virtualService or virtualServices, not both")
    if m.get("virtualService") is not None:
        ref = _vs_ref(m.get("virtualService"), e, f"{path}.virtualService")
        if ref:
            refs.append(ref)
    for i, v in enumerate(e.items(m.get("virtualServices"), f"{path}.virtualServices")):
        ref = _vs_ref(v, e, f"{path}.virtualServices[{i}]")
        if ref:
            refs.append(ref)
    if not refs and m.get("virtualService") is None and m.get("virtualServices") is None:
        e.err(path, "needs virtualService or virtualServices")
    seen: set[tuple[str, str | None]] = set()
    for ref in refs:
        if (ref.name, ref.namespace) in seen:
            e.err(path, f"VirtualService {ref.name!r} is listed twice")
        seen.add((ref.name, ref.namespace))
    dr_name = None
    if m.get("destinationRule") is not None and not argo:
        e.err(f"{path}.destinationRule", "give the subsets in spec.stable.subset and spec.canary.subset instead")
    return IstioRouting(tuple(refs), dr_name)


def _vs_ref(raw: Any, e: _Errors, path: str) -> VirtualServiceRef | None:
    m = e.mapping(raw, path)
    if m is None:
        return None
    e.unknown(m, _VS_KEYS, path)
    full = e.string(m.get("name"), f"{path}.name", required=True)
    routes: list[str] = []
    for i, r in enumerate(e.items(m.get("routes"), f"{path}.routes")):
        s = e.string(r, f"{path}.routes[{i}]", required=True)
        if s:
            routes.append(s)
    tls: list[TLSRouteRef] = []
    for i, t in enumerate(e.items(m.get("tlsRoutes"), f"{path}.tlsRoutes")):
        tm = e.mapping(t, f"{path}.tlsRoutes[{i}]")
        if tm is None:
            continue
        e.unknown(tm, {"port", "sniHosts"}, f"{path}.tlsRoutes[{i}]")
        port = e.integer(tm.get("port"), f"{path}.tlsRoutes[{i}].port", lo=0, hi=65535)
        snis = [s for j, s in enumerate(e.items(tm.get("sniHosts"), f"{path}.tlsRoutes[{i}].sniHosts"))
                if e.string(s, f"{path}.tlsRoutes[{i}].sniHosts[{j}]", required=True)]
        tls.append(TLSRouteRef(port, tuple(snis)))
    tcp: list[TCPRouteRef] = []
    for i, t in enumerate(e.items(m.get("tcpRoutes"), f"{path}.tcpRoutes")):
        tm = e.mapping(t, f"{path}.tcpRoutes[{i}]")
        if tm is None:
            continue
        e.unknown(tm, {"port"}, f"{path}.tcpRoutes[{i}]")
        tcp.append(TCPRouteRef(e.integer(tm.get("port"), f"{path}.tcpRoutes[{i}].port", lo=0, hi=65535)))
    if not full:
        return None
    name, _, namespace = full.partition(".")
    return VirtualServiceRef(name, namespace or None, tuple(routes), tuple(tls), tuple(tcp))


def _capacity(raw: Any, e: _Errors, path: str) -> CapacityPolicy:
    m = e.mapping(raw, path)
    if m is None:
        return CapacityPolicy()
    e.unknown(m, _MR_CAPACITY, path)
    minimum = e.integer(m.get("minReadyReplicas"), f"{path}.minReadyReplicas", lo=0)
    deadline = e.integer(m.get("progressDeadlineSeconds"), f"{path}.progressDeadlineSeconds", lo=1)
    abort = e.boolean(m.get("progressDeadlineAbort"), f"{path}.progressDeadlineAbort")
    scale = e.boolean(m.get("scaleCanary"), f"{path}.scaleCanary")
    return CapacityPolicy(1 if minimum is None else minimum,
                          float(deadline) if deadline is not None else DEFAULT_PROGRESS_DEADLINE,
                          bool(abort), bool(scale))


def _requests(raw: Any, e: _Errors, path: str) -> Requests:
    m = e.mapping(raw, path)
    if m is None:
        return Requests()
    e.unknown(m, _MR_REQUESTS, path)
    vals = {k: e.string(m.get(k), f"{path}.{k}") or "" for k in _MR_REQUESTS}
    return Requests(promote=vals["promote"], promote_full=vals["promoteFull"], abort=vals["abort"], retry=vals["retry"])


# --------------------------------------------------------------------------- Argo Rollout


def _parse_argo_rollout(doc: Mapping[str, Any], e: _Errors) -> RolloutSpec | None:
    name, namespace, generation = _metadata(doc, e)
    spec = e.mapping(doc.get("spec"), "spec", required=True)
    if spec is None:
        return None
    strategy = e.mapping(spec.get("strategy"), "spec.strategy", required=True) or {}
    if strategy.get("blueGreen") is not None:
        e.err("spec.strategy.blueGreen", "only the canary strategy is supported")
        return None
    base = "spec.strategy.canary"
    canary = e.mapping(strategy.get("canary"), base, required=True)
    if canary is None:
        return None
    steps = _steps(canary.get("steps"), e, f"{base}.steps")
    tr = e.mapping(canary.get("trafficRouting"), f"{base}.trafficRouting") or {}
    istio = _istio(tr.get("istio"), e, f"{base}.trafficRouting.istio", argo=True)
    managed = _managed_routes(tr.get("managedRoutes"), e, f"{base}.trafficRouting.managedRoutes")
    for other in sorted(set(tr) - {"istio", "managedRoutes", "maxTrafficWeight"}):
        e.err(f"{base}.trafficRouting.{other}", "only the istio traffic router is supported for Argo Rollouts")
    if tr.get("maxTrafficWeight") is not None:
        e.err(f"{base}.trafficRouting.maxTrafficWeight", "Argo rejects maxTrafficWeight with Istio")
    stable_svc = e.string(canary.get("stableService"), f"{base}.stableService")
    canary_svc = e.string(canary.get("canaryService"), f"{base}.canaryService")
    stable_subset = canary_subset = None
    dr = e.mapping((tr.get("istio") or {}).get("destinationRule") if isinstance(tr.get("istio"), Mapping) else None,
                   f"{base}.trafficRouting.istio.destinationRule")
    if dr is not None:
        dp = f"{base}.trafficRouting.istio.destinationRule"
        e.unknown(dr, {"name", "canarySubsetName", "stableSubsetName", "additionalSubsetNames"}, dp)
        e.string(dr.get("name"), f"{dp}.name", required=True)
        stable_subset = e.string(dr.get("stableSubsetName"), f"{dp}.stableSubsetName", required=True)
        canary_subset = e.string(dr.get("canarySubsetName"), f"{dp}.canarySubsetName", required=True)
        if dr.get("additionalSubsetNames"):
            e.warn(f"{dp}.additionalSubsetNames", "additional subsets are left at their weights; the stable gets "
                                                   "100 - canary regardless")
        istio = IstioRouting(istio.virtual_services, str(dr.get("name"))) if istio else None
    if canary.get("dynamicStableScale"):
        e.warn(f"{base}.dynamicStableScale", "ignored: stable and canary are separate destinations here")
    background = _background(canary.get("analysis"), e, f"{base}.analysis", len(steps))
    _check_routes(steps, TrafficRouting(istio, None, managed), e, f"{base}.steps",
                  f"{base}.trafficRouting.managedRoutes", has_istio=True, kserve=False, argo=True)
    min_pods = e.integer(canary.get("minPodsPerReplicaSet"), f"{base}.minPodsPerReplicaSet", lo=0)
    deadline = e.integer(spec.get("progressDeadlineSeconds"), "spec.progressDeadlineSeconds", lo=1)
    deadline_abort = e.boolean(spec.get("progressDeadlineAbort"), "spec.progressDeadlineAbort")
    paused = e.boolean(spec.get("paused"), "spec.paused") or False
    if e.errors:
        return None
    return RolloutSpec(
        name=name, namespace=namespace, kind=ARGO_KIND, generation=generation,
        stable=Destination(stable_svc or None, stable_subset or None),
        canary=Destination(canary_svc or None, canary_subset or None),
        steps=tuple(steps), traffic=TrafficRouting(istio, None, managed), background=background,
        capacity=CapacityPolicy(min_ready_replicas=1 if min_pods is None else max(min_pods, 1),
                                progress_deadline_seconds=float(deadline or DEFAULT_PROGRESS_DEADLINE),
                                progress_deadline_abort=bool(deadline_abort)),
        paused=paused,
        update_hash=update_hash(spec.get("template"), stable_svc, canary_svc, canary.get("steps")),
    )


# --------------------------------------------------------------------------- shared: steps, analysis


def _steps(raw: Any, e: _Errors, path: str) -> list[Step]:
    out: list[Step] = []
    for i, s in enumerate(e.items(raw, path)):
        p = f"{path}[{i}]"
        m = e.mapping(s, p)
        if m is None:
            continue
        for key, why in _UNSUPPORTED_STEPS.items():
            if key in m:
                e.err(f"{p}.{key}", why)
        e.unknown({k: v for k, v in m.items() if k not in _UNSUPPORTED_STEPS}, _STEP_KEYS, p)
        kinds = [k for k in m if k in _STEP_KEYS]
        if not kinds and not any(k in m for k in _UNSUPPORTED_STEPS):
            e.err(p, "a step needs one of: " + ", ".join(sorted(_STEP_KEYS)))
            continue
        if len(kinds) > 1:
            e.err(p, f"a step has exactly one type, got {' and '.join(kinds)}")
            continue
        if not kinds:
            continue
        step = _step(kinds[0], m[kinds[0]], e, f"{p}.{kinds[0]}", dict(m))
        if step is not None:
            out.append(step)
    return out


def _step(kind: str, v: Any, e: _Errors, p: str, raw: dict[str, Any]) -> Step | None:
    if kind == "setWeight":
        w = e.integer(v, p, lo=0, hi=MAX_WEIGHT)
        if v is None:
            e.err(p, "must be an integer within 0..100")
        return None if w is None else Step(StepKind.SET_WEIGHT, raw, weight=w)
    if kind == "pause":
        m = e.mapping(v, p) if v is not None else {}
        if m is None:
            return None
        e.unknown(m, {"duration"}, p)
        seconds = _pause_seconds(m.get("duration"), e, f"{p}.duration")
        if m.get("duration") is not None and seconds is None:
            return None
        return Step(StepKind.PAUSE, raw, pause_seconds=seconds)
    if kind == "analysis":
        a = _analysis(v, e, p)
        return None if a is None else Step(StepKind.ANALYSIS, raw, analysis=a)
    if kind == "setHeaderRoute":
        h = _header_route(v, e, p)
        return None if h is None else Step(StepKind.SET_HEADER_ROUTE, raw, header_route=h)
    if kind == "setMirrorRoute":
        mr = _mirror_route(v, e, p)
        return None if mr is None else Step(StepKind.SET_MIRROR_ROUTE, raw, mirror_route=mr)
    cs = _canary_scale(v, e, p)
    return None if cs is None else Step(StepKind.SET_CANARY_SCALE, raw, canary_scale=cs)


def _pause_seconds(v: Any, e: _Errors, p: str) -> float | None:
    """Argo's RolloutPause.DurationSeconds: an int (seconds), or a string: an int without unit
    (seconds) or a Go duration (``10m``, ``1h30m``), whole seconds."""
    if v is None:
        return None
    if isinstance(v, bool):
        e.err(p, "must be a number of seconds or a duration such as 10m")
        return None
    if isinstance(v, int):
        if v < 0:
            e.err(p, f"must not be negative, got {v}")
            return None
        return float(v)
    if isinstance(v, str):
        try:
            seconds = float(int(v)) if v.strip().lstrip("+-").isdigit() else float(int(parse_go_duration_seconds(v)))
        except ValueError as exc:
            e.err(p, f"invalid duration {v!r}: {exc}")
            return None
        if seconds < 0:
            e.err(p, f"must not be negative, got {v!r}")
            return None
        return seconds
    e.err(p, f"must be a number of seconds or a duration such as 10m, got {_type(v)}")
    return None


def _analysis(v: Any, e: _Errors, p: str, extra: set[str] | None = None) -> AnalysisSpec | None:
    m = e.mapping(v, p, required=True)
    if m is None:
        return None
    e.unknown(m, _ANALYSIS_KEYS | (extra or set()), p)
    templates: list[TemplateRef] = []
    for i, t in enumerate(e.items(m.get("templates"), f"{p}.templates")):
        tm = e.mapping(t, f"{p}.templates[{i}]")
        if tm is None:
            continue
        e.unknown(tm, {"templateName", "clusterScope"}, f"{p}.templates[{i}]")
        name = e.string(tm.get("templateName"), f"{p}.templates[{i}].templateName", required=True)
        cluster = e.boolean(tm.get("clusterScope"), f"{p}.templates[{i}].clusterScope") or False
        if name:
            templates.append(TemplateRef(name, cluster))
    if not m.get("templates"):
        e.err(f"{p}.templates", "at least one template is required")
    args: list[AnalysisArg] = []
    names: set[str] = set()
    for i, a in enumerate(e.items(m.get("args"), f"{p}.args")):
        ap = f"{p}.args[{i}]"
        am = e.mapping(a, ap)
        if am is None:
            continue
        e.unknown(am, {"name", "value", "valueFrom"}, ap)
        name = e.string(am.get("name"), f"{ap}.name", required=True)
        value = e.string(am.get("value"), f"{ap}.value")
        vf = e.mapping(am.get("valueFrom"), f"{ap}.valueFrom")
        if vf is not None:
            e.unknown(vf, {"podTemplateHashValue", "fieldRef"}, f"{ap}.valueFrom")
            if vf.get("podTemplateHashValue") not in (None, "Stable", "Latest"):
                e.err(f"{ap}.valueFrom.podTemplateHashValue", "must be Stable or Latest")
            fr = e.mapping(vf.get("fieldRef"), f"{ap}.valueFrom.fieldRef")
            if fr is not None:
                e.string(fr.get("fieldPath"), f"{ap}.valueFrom.fieldRef.fieldPath", required=True)
        if value is not None and vf is not None:
            e.err(ap, "give value or valueFrom, not both")
        if name:
            if name in names:
                e.err(f"{ap}.name", f"duplicate argument {name!r}")
            names.add(name)
            args.append(AnalysisArg(name, value, dict(vf) if vf is not None else None))
    for key in ("dryRun", "measurementRetention"):
        for i, r in enumerate(e.items(m.get(key), f"{p}.{key}")):
            rm = e.mapping(r, f"{p}.{key}[{i}]")
            if rm is not None:
                e.string(rm.get("metricName"), f"{p}.{key}[{i}].metricName", required=True)
    raw = {k: m[k] for k in ("dryRun", "measurementRetention", "analysisRunMetadata") if k in m}
    return AnalysisSpec(tuple(templates), tuple(args), raw)


def _background(v: Any, e: _Errors, p: str, n_steps: int) -> BackgroundAnalysis | None:
    if v is None:
        return None
    a = _analysis(v, e, p, extra={"startingStep"})
    m = v if isinstance(v, Mapping) else {}
    start = e.integer(m.get("startingStep"), f"{p}.startingStep", lo=0)
    if start is not None and n_steps and start >= n_steps:
        e.err(f"{p}.startingStep", f"must be a step index (0..{n_steps - 1}), got {start}")
    return None if a is None else BackgroundAnalysis(a, start or 0)


def _string_match(v: Any, e: _Errors, p: str) -> StringMatch | None:
    m = e.mapping(v, p, required=True)
    if m is None:
        return None
    e.unknown(m, {k.value for k in MatchKind}, p)
    given = [(MatchKind(k), m[k]) for k in ("exact", "prefix", "regex") if m.get(k) not in (None, "")]
    if len(given) != 1:
        e.err(p, "needs exactly one of exact, prefix or regex (non-empty)")
        return None
    kind, value = given[0]
    if not isinstance(value, str):
        e.err(f"{p}.{kind}", f"must be a string, got {_type(value)}")
        return None
    if kind is MatchKind.REGEX and len(value) > 1024:
        e.err(f"{p}.regex", "Istio allows at most 1024 characters")
    return StringMatch(kind, value)


def _header_route(v: Any, e: _Errors, p: str) -> HeaderRoute | None:
    m = e.mapping(v, p, required=True)
    if m is None:
        return None
    e.unknown(m, {"name", "match"}, p)
    name = e.string(m.get("name"), f"{p}.name", required=True)
    matches: list[HeaderMatch] = []
    for i, h in enumerate(e.items(m.get("match"), f"{p}.match")):
        hp = f"{p}.match[{i}]"
        hm = e.mapping(h, hp)
        if hm is None:
            continue
        e.unknown(hm, {"headerName", "headerValue"}, hp)
        header = e.string(hm.get("headerName"), f"{hp}.headerName", required=True)
        value = _string_match(hm.get("headerValue"), e, f"{hp}.headerValue")
        if header and header != header.lower():
            e.warn(f"{hp}.headerName", "Istio expects lowercase header names")
        if header and value:
            matches.append(HeaderMatch(header, value))
    return HeaderRoute(name, tuple(matches)) if name else None


def _mirror_route(v: Any, e: _Errors, p: str) -> MirrorRoute | None:
    m = e.mapping(v, p, required=True)
    if m is None:
        return None
    e.unknown(m, {"name", "match", "percentage"}, p)
    name = e.string(m.get("name"), f"{p}.name", required=True)
    pct = e.integer(m.get("percentage"), f"{p}.percentage", lo=0, hi=100)
    blocks: list[MirrorMatch] = []
    for i, b in enumerate(e.items(m.get("match"), f"{p}.match")):
        bp = f"{p}.match[{i}]"
        bm = e.mapping(b, bp)
        if bm is None:
            continue
        e.unknown(bm, {"method", "path", "headers"}, bp)
        method = _string_match(bm["method"], e, f"{bp}.method") if bm.get("method") is not None else None
        path = _string_match(bm["path"], e, f"{bp}.path") if bm.get("path") is not None else None
        headers: list[tuple[str, StringMatch]] = []
        hdrs = e.mapping(bm.get("headers"), f"{bp}.headers") or {}
        for hname, hval in hdrs.items():
            sm = _string_match(hval, e, f"{bp}.headers.{hname}")
            if sm is not None:
                headers.append((str(hname), sm))
        if method is None and path is None and not headers:
            e.err(bp, "a match block needs method, path or headers")
        blocks.append(MirrorMatch(method, path, tuple(headers)))
    return MirrorRoute(name, tuple(blocks), float(100 if pct is None else pct)) if name else None


def _canary_scale(v: Any, e: _Errors, p: str) -> CanaryScale | None:
    m = e.mapping(v, p, required=True)
    if m is None:
        return None
    e.unknown(m, {"replicas", "weight", "matchTrafficWeight"}, p)
    replicas = e.integer(m.get("replicas"), f"{p}.replicas", lo=0)
    weight = e.integer(m.get("weight"), f"{p}.weight", lo=0, hi=MAX_WEIGHT)
    match = e.boolean(m.get("matchTrafficWeight"), f"{p}.matchTrafficWeight") or False
    given = sum(x for x in (replicas is not None, weight is not None, match))
    if given != 1:
        e.err(p, "needs exactly one of replicas, weight or matchTrafficWeight: true")
        return None
    return CanaryScale(replicas, weight, match)


def _check_routes(steps: list[Step], traffic: TrafficRouting, e: _Errors, path: str, managed_path: str,
                  *, has_istio: bool, kserve: bool, argo: bool = False, haproxy: HAProxyRouting | None = None) -> None:
    """Managed-route steps need a router that has routes, and their names in managedRoutes
    when that list is given (Argo requires the list; we derive it from the steps otherwise)."""
    kinds: dict[str, str] = {}
    for i, s in enumerate(steps):
        route = s.header_route or s.mirror_route
        if route is None:
            continue
        key = "setHeaderRoute" if s.header_route else "setMirrorRoute"
        if kserve:
            e.err(f"{path}[{i}].{key}", "KServe's canaryTrafficPercent has no header or mirror routes")
            continue
        if haproxy is not None:
            _check_haproxy_route(s, haproxy, e, f"{path}[{i}].{key}")
        elif not has_istio:
            e.err(f"{path}[{i}].{key}", "needs istio traffic routing")
        if kinds.setdefault(route.name, key) != key:
            e.err(f"{path}[{i}].{key}.name", f"{route.name!r} is already a {kinds[route.name]} route")
        if traffic.managed_routes and route.name not in traffic.managed_routes:
            e.err(f"{path}[{i}].{key}.name", f"{route.name!r} is not listed in {managed_path}")
        elif argo and not traffic.managed_routes:
            e.warn(f"{path}[{i}].{key}.name", f"Argo requires {managed_path} to list {route.name!r}")


def _check_haproxy_route(step: Step, routing: HAProxyRouting, e: _Errors, p: str) -> None:
    """HAProxy's header routes are exact values of one header, kept in a runtime map."""
    if step.mirror_route is not None:
        e.err(p, "HAProxy routing has no mirror routes")
        return
    if step.header_route is None or not step.header_route.match:
        return
    if routing.header_map is None:
        e.err(p, "HAProxy header routes need trafficRouting.haproxy.headerMap (the map the frontend reads)")
    for j, hm in enumerate(step.header_route.match):
        if hm.header.lower() != routing.header:
            e.err(f"{p}.match[{j}].headerName", f"HAProxy routes only on the header {routing.header!r} "
                                                 "(trafficRouting.haproxy.header)")
        if hm.value.kind is not MatchKind.EXACT:
            e.err(f"{p}.match[{j}].headerValue", "HAProxy header routes match exact values only")
