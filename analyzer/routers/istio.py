"""Istio router: the canary's share through VirtualServices (traffic-semantics.md §2, §3).

Pure functions on VirtualService dicts, plus :class:`IstioRouter`, a thin class that reads and
JSON-patches them through the :class:`~analyzer.ports.CustomObjects` port.

What it changes, and only that:

* the **weighted routes**: the HTTP, TLS and TCP routes named in the rollout, or, when none is
  named, the routes that hold both the stable and the canary destination (which must be
  unambiguous: one per section). Only the two weights change: canary = w, stable = 100 - w
  (a 100-based split is right on every Istio version, §3.1). Every other field of the route and
  every other route stays as it is; a third destination with a non-zero weight is refused rather
  than dropped (Argo deletes it; we would rather say so);
* the **managed routes** (setHeaderRoute / setMirrorRoute): kept at the top of ``spec.http`` in
  the rollout's precedence order, rebuilt from the weighted route's canary destination (host,
  subset and port copied), and removed when no longer wanted. Header entries are ORed (one match
  block each), as in Argo; a mirror route serves its requests at the current split and mirrors
  ``percentage`` % to the canary. A route whose name is one the rollout manages belongs to the
  rollout: it is replaced or removed (as in Argo, never give a hand-made route such a name).

Destinations are recognised by host (``inference-v2`` matches ``inference-v2.ml.svc.cluster.local``;
labels are compared up to the shorter name, so a namespace, when given on both sides, must agree)
or, for a subset-level split, by subset (and host when the rollout names one).

Writes are JSON patches guarded by ``test`` operations on exactly what the change was computed
from: the whole route for a weight change, the whole ``spec.http`` list when routes are added or
removed. A concurrent writer makes the patch fail (422) instead of being overwritten blindly; the
router then reads again and recomputes. Weights are read back and verified.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.core.steps import (
    MAX_WEIGHT,
    Destination,
    HeaderRoute,
    IstioRouting,
    MirrorMatch,
    MirrorRoute,
    TrafficObservation,
    TrafficState,
    VirtualServiceRef,
)
from analyzer.ports import CustomObjects, RouterError, WriteConflict

GROUP = "networking.istio.io"
VERSION = "v1"
PLURAL = "virtualservices"
SECTIONS = ("http", "tls", "tcp")


class IstioError(RouterError):
    """A VirtualService cannot be driven as asked (route not found, ambiguous, ...)."""


class AmbiguousRoute(IstioError):
    """Several routes hold both destinations and none is named: the rollout must name them."""


@dataclass(frozen=True)
class RouteRef:
    section: str  # http | tls | tcp
    index: int
    name: str | None = None

    @property
    def pointer(self) -> str:
        return f"/spec/{self.section}/{self.index}"

    def describe(self) -> str:
        return f"{self.section}[{self.index}]" + (f" ({self.name})" if self.name else "")


# --------------------------------------------------------------------------- destinations


def host_matches(host: str, want: str) -> bool:
    """``inference-v2`` == ``inference-v2.ml.svc.cluster.local``; ``a.ns1`` != ``a.ns2.svc``.
    DNS labels are compared up to the shorter of the two names."""
    if not host or not want:
        return False
    a, b = host.lower().split("."), want.lower().split(".")
    k = min(len(a), len(b))
    return a[:k] == b[:k]


def role_of(entry: Mapping[str, Any], stable: Destination, canary: Destination) -> str | None:
    """"stable", "canary" or None for one destination entry of a route."""
    dest = entry.get("destination")
    if not isinstance(dest, Mapping):
        return None
    host = str(dest.get("host") or "")
    subset = dest.get("subset")
    for role, d in (("canary", canary), ("stable", stable)):
        if d.subset:
            if subset == d.subset and (d.host is None or host_matches(host, d.host)):
                return role
        elif d.host and host_matches(host, d.host):
            return role
    return None


def _roles(route: Mapping[str, Any], stable: Destination, canary: Destination) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"stable": [], "canary": [], "other": []}
    for j, entry in enumerate(route.get("route") or []):
        if isinstance(entry, Mapping):
            out[role_of(entry, stable, canary) or "other"].append(j)
    return out


def _weight(entry: Mapping[str, Any]) -> int:
    w = entry.get("weight")
    return int(w) if isinstance(w, int | float) and not isinstance(w, bool) else 0  # proto3: absent is 0


def _routes(vs: Mapping[str, Any], section: str) -> list[Any]:
    spec = vs.get("spec")
    routes = spec.get(section) if isinstance(spec, Mapping) else None
    return routes if isinstance(routes, list) else []


def _vs_name(vs: Mapping[str, Any]) -> str:
    meta = vs.get("metadata")
    return str(meta.get("name")) if isinstance(meta, Mapping) else "?"


def _summary(route: Mapping[str, Any]) -> str:
    parts = []
    for entry in route.get("route") or []:
        dest = entry.get("destination") if isinstance(entry, Mapping) else None
        if isinstance(dest, Mapping):
            host = str(dest.get("host"))
            if dest.get("subset"):
                host += f"/{dest['subset']}"
            parts.append(f"{host}={_weight(entry)}" if "weight" in entry else host)
    return ", ".join(parts) or "no destinations"


# --------------------------------------------------------------------------- finding weighted routes


def _tls_matches(route: Mapping[str, Any], port: int | None, snis: set[str]) -> bool:
    """Argo: every match block carries the one port, and their sniHosts together are the set."""
    blocks = route.get("match") or []
    if not blocks:
        return False
    seen: set[str] = set()
    for b in blocks:
        if not isinstance(b, Mapping):
            return False
        if port is not None and b.get("port") != port:
            return False
        seen.update(str(s) for s in b.get("sniHosts") or [])
    return seen == snis


def _tcp_matches(route: Mapping[str, Any], port: int | None) -> bool:
    blocks = route.get("match") or []
    if port is None:
        return True
    return bool(blocks) and all(isinstance(b, Mapping) and b.get("port") == port for b in blocks)


def find_weighted_routes(vs: Mapping[str, Any], ref: VirtualServiceRef, stable: Destination, canary: Destination,
                         managed: Iterable[str] = ()) -> list[RouteRef]:
    """The routes whose stable/canary weights the rollout moves; raises IstioError."""
    name = _vs_name(vs)
    skip = set(managed)
    found: list[RouteRef] = []
    if ref.auto:
        for section in SECTIONS:
            cands = []
            for i, r in enumerate(_routes(vs, section)):
                if not isinstance(r, Mapping) or (section == "http" and r.get("name") in skip):
                    continue
                roles = _roles(r, stable, canary)
                if roles["stable"] and roles["canary"]:
                    cands.append(RouteRef(section, i, r.get("name")))
            if len(cands) > 1:
                raise AmbiguousRoute(
                    f"VirtualService {name}: {len(cands)} {section} routes hold both {stable.describe()} and "
                    f"{canary.describe()} ({', '.join(c.describe() for c in cands)}); name the weighted one "
                    f"in the rollout's routes")
            found += cands
        if not found:
            listing = "; ".join(f"{s}[{i}]: {_summary(r)}" for s in SECTIONS for i, r in enumerate(_routes(vs, s))
                                if isinstance(r, Mapping))
            raise IstioError(f"VirtualService {name}: no route holds both the stable ({stable.describe()}) and the "
                             f"canary ({canary.describe()}) destination ({listing or 'no routes'})")
        return found
    http = _routes(vs, "http")
    for rname in ref.routes:
        idx = [i for i, r in enumerate(http) if isinstance(r, Mapping) and r.get("name") == rname]
        if not idx:
            raise IstioError(f"VirtualService {name}: HTTP route {rname!r} not found")
        if len(idx) > 1:
            raise IstioError(f"VirtualService {name}: {len(idx)} HTTP routes are named {rname!r}")
        found.append(RouteRef("http", idx[0], rname))
    for t in ref.tls_routes:
        idx = [i for i, r in enumerate(_routes(vs, "tls")) if isinstance(r, Mapping)
               and _tls_matches(r, t.port, set(t.sni_hosts))]
        if not idx:
            raise IstioError(f"VirtualService {name}: no TLS route with port {t.port} and sniHosts {list(t.sni_hosts)}")
        found += [RouteRef("tls", i) for i in idx]
    for tcp in ref.tcp_routes:
        idx = [i for i, r in enumerate(_routes(vs, "tcp")) if isinstance(r, Mapping) and _tcp_matches(r, tcp.port)]
        if not idx:
            raise IstioError(f"VirtualService {name}: no TCP route with port {tcp.port}")
        found += [RouteRef("tcp", i) for i in idx]
    for rr in found:
        route = _routes(vs, rr.section)[rr.index]
        roles = _roles(route, stable, canary)
        for role, d in (("canary", canary), ("stable", stable)):
            if not roles[role]:
                raise IstioError(f"VirtualService {name}: {role} destination {d.describe()} not found in route "
                                 f"{rr.describe()} ({_summary(route)})")
    return found


# --------------------------------------------------------------------------- rewriting


def _set_weights(vs: dict[str, Any], rr: RouteRef, stable: Destination, canary: Destination, weight: int) -> None:
    route = vs["spec"][rr.section][rr.index]
    roles = _roles(route, stable, canary)
    name = _vs_name(vs)
    for role in ("stable", "canary"):
        if len(roles[role]) > 1:
            raise IstioError(f"VirtualService {name}: route {rr.describe()} has {len(roles[role])} {role} "
                             f"destinations ({_summary(route)}); cannot split between them")
    others = [j for j in roles["other"] if _weight(route["route"][j]) > 0]
    if others:
        raise IstioError(f"VirtualService {name}: route {rr.describe()} also sends traffic to a destination that is "
                         f"neither stable nor canary ({_summary(route)}); refusing to drop it")
    route["route"][roles["canary"][0]]["weight"] = weight
    route["route"][roles["stable"][0]]["weight"] = MAX_WEIGHT - weight


def _canary_destination(route: Mapping[str, Any], stable: Destination, canary: Destination) -> dict[str, Any]:
    roles = _roles(route, stable, canary)
    dest = route["route"][roles["canary"][0]]["destination"]
    return copy.deepcopy(dict(dest))


def header_route_json(route: HeaderRoute, canary_dest: Mapping[str, Any]) -> dict[str, Any]:
    """Argo's header route: one match block per entry (ORed), all traffic to the canary."""
    return {"name": route.name,
            "match": [{"headers": {m.header: m.value.to_json()}} for m in route.match],
            "route": [{"destination": copy.deepcopy(dict(canary_dest)), "weight": MAX_WEIGHT}]}


def _mirror_block(b: MirrorMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if b.method is not None:
        out["method"] = b.method.to_json()
    if b.path is not None:
        out["uri"] = b.path.to_json()
    if b.headers:
        out["headers"] = {h: v.to_json() for h, v in b.headers}
    return out


def mirror_route_json(route: MirrorRoute, weighted: Mapping[str, Any], canary_dest: Mapping[str, Any]) -> dict[str, Any]:
    """Argo's mirror route: the weighted route's destinations (at the current split), plus a
    mirror of ``percentage`` % to the canary."""
    return {"name": route.name,
            "match": [_mirror_block(b) for b in route.match],
            "route": copy.deepcopy(list(weighted.get("route") or [])),
            "mirror": copy.deepcopy(dict(canary_dest)),
            "mirrorPercentage": {"value": route.percentage}}


def apply_traffic(vs: Mapping[str, Any], ref: VirtualServiceRef, stable: Destination, canary: Destination,
                  state: TrafficState) -> dict[str, Any]:
    """The VirtualService as it must be for ``state`` (a new dict; ``vs`` is not modified)."""
    new: dict[str, Any] = copy.deepcopy(dict(vs))
    spec = new.get("spec")
    if not isinstance(spec, dict):
        raise IstioError(f"VirtualService {_vs_name(vs)} has no spec")
    managed = list(state.managed) + [n for n in state.route_names() if n not in state.managed]
    has_http = isinstance(spec.get("http"), list)
    if has_http:
        spec["http"] = [r for r in spec["http"] if not (isinstance(r, Mapping) and r.get("name") in managed)]
    weighted = find_weighted_routes(new, ref, stable, canary, managed)
    for rr in weighted:
        _set_weights(new, rr, stable, canary, state.weight)
    first_http = next((rr for rr in weighted if rr.section == "http"), None)
    if first_http is not None and (state.header_routes or state.mirror_routes):
        wr = spec["http"][first_http.index]
        dest = _canary_destination(wr, stable, canary)
        built: dict[str, dict[str, Any]] = {h.name: header_route_json(h, dest) for h in state.header_routes}
        built.update({m.name: mirror_route_json(m, wr, dest) for m in state.mirror_routes})
        spec["http"] = [built[n] for n in managed if n in built] + spec["http"]
    problems = validate(new)
    if problems:
        raise IstioError(f"VirtualService {_vs_name(vs)} would be invalid: " + "; ".join(problems))
    return new


# --------------------------------------------------------------------------- JSON patch


def _without_weights(route: Any) -> Any:
    if not isinstance(route, Mapping):
        return route
    out = dict(route)
    if isinstance(out.get("route"), list):
        out["route"] = [{k: v for k, v in e.items() if k != "weight"} if isinstance(e, Mapping) else e
                        for e in out["route"]]
    return out


def json_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new`` (which differ in ``spec`` sections only),
    each change guarded by a ``test`` of what it was computed from."""
    ops: list[dict[str, Any]] = []
    old_spec = old.get("spec") or {}
    new_spec = new.get("spec") or {}
    for section in SECTIONS:
        a, b = old_spec.get(section), new_spec.get(section)
        if a == b:
            continue
        if (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_without_weights(x) == _without_weights(y) for x, y in zip(a, b, strict=True))):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                if x == y:
                    continue
                ops.append({"op": "test", "path": f"/spec/{section}/{i}", "value": copy.deepcopy(x)})
                for j, (ex, ey) in enumerate(zip(x["route"], y["route"], strict=True)):
                    if ex.get("weight") != ey.get("weight"):
                        ops.append({"op": "replace" if "weight" in ex else "add",
                                    "path": f"/spec/{section}/{i}/route/{j}/weight", "value": ey["weight"]})
        elif a is None:
            ops.append({"op": "add", "path": f"/spec/{section}", "value": copy.deepcopy(b)})
        else:
            ops.append({"op": "test", "path": f"/spec/{section}", "value": copy.deepcopy(a)})
            ops.append({"op": "replace", "path": f"/spec/{section}", "value": copy.deepcopy(b)})
    return ops


# --------------------------------------------------------------------------- validation and read-back


def validate(vs: Mapping[str, Any]) -> list[str]:
    """Istio's own checks that matter for what we write (validation.go): weights are
    non-negative integers, a route with several destinations has a positive total, string
    matches hold exactly one of exact/prefix/regex, route names are unique."""
    problems: list[str] = []
    names: set[str] = set()
    for section in SECTIONS:
        for i, r in enumerate(_routes(vs, section)):
            if not isinstance(r, Mapping):
                problems.append(f"{section}[{i}] is not a mapping")
                continue
            where = f"{section}[{i}]"
            dests = r.get("route") or []
            total = 0
            for j, entry in enumerate(dests):
                w = entry.get("weight", 0) if isinstance(entry, Mapping) else 0
                if isinstance(w, bool) or not isinstance(w, int | float) or w < 0 or int(w) != w:
                    problems.append(f"{where}.route[{j}].weight must be an integer >= 0, got {w!r}")
                    continue
                total += int(w)
            if len(dests) > 1 and total == 0:
                problems.append(f"{where}: total destination weight = 0")
            if section == "http":
                n = r.get("name")
                if n:
                    if n in names:
                        problems.append(f"{where}: duplicate route name {n!r}")
                    names.add(str(n))
                for k, m in enumerate(r.get("match") or []):
                    if not isinstance(m, Mapping):
                        continue
                    for key in ("uri", "method", "scheme", "authority"):
                        if key in m and not _one_match(m[key]):
                            problems.append(f"{where}.match[{k}].{key} needs exactly one of exact, prefix, regex")
                    for key in ("headers", "queryParams", "withoutHeaders"):
                        for h, sm in (m.get(key) or {}).items():
                            if sm and not _one_match(sm):
                                problems.append(f"{where}.match[{k}].{key}.{h} needs exactly one of exact, prefix, regex")
    return problems


def _one_match(sm: Any) -> bool:
    return isinstance(sm, Mapping) and sum(1 for k in ("exact", "prefix", "regex") if k in sm) == 1 and (
        "exact" in sm or bool(sm.get("prefix") or sm.get("regex")))


@dataclass(frozen=True)
class RouteWeights:
    vs: str
    route: RouteRef
    canary: int
    stable: int
    other: int


def read_weights(vs: Mapping[str, Any], ref: VirtualServiceRef, stable: Destination, canary: Destination,
                 managed: Iterable[str] = ()) -> list[RouteWeights]:
    out = []
    for rr in find_weighted_routes(vs, ref, stable, canary, managed):
        route = _routes(vs, rr.section)[rr.index]
        roles = _roles(route, stable, canary)
        entries = route.get("route") or []
        out.append(RouteWeights(_vs_name(vs), rr, sum(_weight(entries[j]) for j in roles["canary"]),
                                sum(_weight(entries[j]) for j in roles["stable"]),
                                sum(_weight(entries[j]) for j in roles["other"])))
    return out


def observe(objects: Sequence[tuple[VirtualServiceRef, Mapping[str, Any]]], stable: Destination, canary: Destination,
            state: TrafficState) -> TrafficObservation:
    """What the VirtualServices hold, compared with ``state``: the canary weight if every
    weighted route agrees on a 100-based split, the managed routes present, and the problems."""
    problems: list[str] = []
    weights: set[int] = set()
    present: set[str] | None = None
    managed = set(state.managed) | state.route_names()
    for ref, vs in objects:
        name = _vs_name(vs)
        try:
            rws = read_weights(vs, ref, stable, canary, managed)
        except IstioError as exc:
            problems.append(str(exc))
            continue
        for rw in rws:
            if rw.canary + rw.stable != MAX_WEIGHT or rw.other:
                problems.append(f"VirtualService {name} {rw.route.describe()}: weights canary {rw.canary}, stable "
                                f"{rw.stable}" + (f", others {rw.other}" if rw.other else "") + " are not a 100-based split")
            weights.add(rw.canary)
        if not any(rw.route.section == "http" for rw in rws):
            continue  # managed routes live in VirtualServices with a weighted HTTP route
        http = _routes(vs, "http")
        names = {str(r.get("name")) for r in http if isinstance(r, Mapping) and r.get("name") in managed}
        present = names if present is None else present & names
        try:
            wanted = apply_traffic(vs, ref, stable, canary, state)
        except IstioError as exc:
            problems.append(str(exc))
            continue
        top = [r.get("name") for r in http[: len(names)] if isinstance(r, Mapping)]
        if sorted(map(str, top)) != sorted(names):
            problems.append(f"VirtualService {name}: managed routes are not at the top of spec.http")
        for r in http:
            if isinstance(r, Mapping) and r.get("name") in state.route_names():
                want = next(w for w in _routes(wanted, "http") if w.get("name") == r.get("name"))
                if _without_weights(r) != _without_weights(want):
                    problems.append(f"VirtualService {name}: managed route {r.get('name')!r} differs from the wanted one")
    if len(weights) > 1:
        problems.append("the weighted routes disagree: canary weights " + ", ".join(map(str, sorted(weights))))
    weight = next(iter(weights)) if len(weights) == 1 else None
    return TrafficObservation(weight, frozenset(present or ()), tuple(problems))


# --------------------------------------------------------------------------- the router


class IstioRouter:
    """Implements :class:`~analyzer.ports.TrafficRouter` over the Kubernetes API port."""

    def __init__(self, api: CustomObjects, routing: IstioRouting, stable: Destination, canary: Destination,
                 namespace: str, *, version: str = VERSION, max_conflicts: int = 5) -> None:
        self.api = api
        self.routing = routing
        self.stable = stable
        self.canary = canary
        self.namespace = namespace
        self.version = version
        self.max_conflicts = max_conflicts

    def _ns(self, ref: VirtualServiceRef) -> str:
        return ref.namespace or self.namespace

    def _get(self, ref: VirtualServiceRef) -> dict[str, Any]:
        vs = self.api.get(GROUP, self.version, PLURAL, self._ns(ref), ref.name)
        if vs is None:
            raise IstioError(f"VirtualService {self._ns(ref)}/{ref.name} not found")
        return vs

    def apply(self, state: TrafficState) -> TrafficObservation:
        for ref in self.routing.virtual_services:
            for _ in range(self.max_conflicts):
                vs = self._get(ref)
                ops = json_patch(vs, apply_traffic(vs, ref, self.stable, self.canary, state))
                if not ops:
                    break
                try:
                    self.api.json_patch(GROUP, self.version, PLURAL, self._ns(ref), ref.name, ops)
                    break
                except WriteConflict:
                    continue  # another writer got there first: read again and recompute
            else:
                raise IstioError(f"VirtualService {self._ns(ref)}/{ref.name}: gave up after {self.max_conflicts} "
                                 f"conflicting writes by others")
        return self.observe(state)

    def observe(self, state: TrafficState) -> TrafficObservation:
        objects = [(ref, self._get(ref)) for ref in self.routing.virtual_services]
        return observe(objects, self.stable, self.canary, state)
