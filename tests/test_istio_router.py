"""Istio router: weighted routes found and rewritten (weights only), managed header/mirror routes,
several VirtualServices, http/tls/tcp, guarded JSON patches, read-back; every VirtualService it
produces is checked against the real Istio CRD, and the router class runs against the fake API
server through the real kubernetes client."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from crd_validation import VIRTUALSERVICE_CRD, assert_valid

from analyzer.core.steps import (
    Destination,
    HeaderMatch,
    HeaderRoute,
    IstioRouting,
    MatchKind,
    MirrorMatch,
    MirrorRoute,
    StringMatch,
    TCPRouteRef,
    TLSRouteRef,
    TrafficState,
    VirtualServiceRef,
)
from analyzer.ports import WriteConflict
from analyzer.rollout.memory import MemoryObjects, apply_json_patch
from analyzer.routers import istio
from analyzer.routers.istio import (
    IstioError,
    IstioRouter,
    apply_traffic,
    find_weighted_routes,
    json_patch,
    observe,
)

SEED = Path(__file__).resolve().parent / "data" / "seed-manifests" / "06-istio-traffic-split.yaml"
V1, V2 = Destination("inference-v1"), Destination("inference-v2")
PIN = HeaderRoute("pin-v2", (HeaderMatch("x-canary", StringMatch(MatchKind.EXACT, "1")),
                             HeaderMatch("x-tenant", StringMatch(MatchKind.PREFIX, "beta-"))))
SHADOW = MirrorRoute("shadow", (MirrorMatch(method=StringMatch(MatchKind.EXACT, "POST"),
                                            path=StringMatch(MatchKind.PREFIX, "/v2/models"),
                                            headers=(("x-debug", StringMatch(MatchKind.REGEX, "on|yes")),)),), 25.0)


def seed() -> tuple[dict[str, Any], dict[str, Any]]:
    routing, ab = [d for d in yaml.safe_load_all(SEED.read_text()) if d]
    return routing, ab


def vs(name: str, http: list[dict] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"hosts": [f"{name}.example"], **spec}
    if http is not None:
        body["http"] = http
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name},
            "spec": body}


def dest(host: str, weight: int | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"destination": {"host": host, **extra}}
    if weight is not None:
        d["weight"] = weight
    return d


REF = VirtualServiceRef("inference-routing")


# --------------------------------------------------------------------------- the seed


@pytest.mark.parametrize("weight", [0, 5, 25, 50, 100])
def test_seed_only_the_weighted_routes_weights_change(weight):
    routing, ab = seed()
    new = apply_traffic(routing, REF, V1, V2, TrafficState(weight))
    assert new["spec"]["http"][0] == routing["spec"]["http"][0]  # the x-model-version: v2 route, untouched
    route = new["spec"]["http"][1]["route"]
    assert [(r["destination"], r["weight"]) for r in route] == [
        ({"host": "inference-v1", "port": {"number": 8000}}, 100 - weight),
        ({"host": "inference-v2", "port": {"number": 8000}}, weight)]
    expected = copy.deepcopy(routing)
    expected["spec"]["http"][1]["route"][0]["weight"] = 100 - weight
    expected["spec"]["http"][1]["route"][1]["weight"] = weight
    assert new == expected  # nothing else changed anywhere
    assert_valid(new, VIRTUALSERVICE_CRD)
    # the A/B VirtualService holds neither destination pair: it is not a weighted VirtualService
    with pytest.raises(IstioError, match="no route holds both"):
        find_weighted_routes(ab, VirtualServiceRef("ab-testing"), V1, V2)


def test_seed_patch_is_guarded_and_minimal():
    routing, _ = seed()
    new = apply_traffic(routing, REF, V1, V2, TrafficState(25))
    ops = json_patch(routing, new)
    assert ops == [
        {"op": "test", "path": "/spec/http/1", "value": routing["spec"]["http"][1]},
        {"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 75},
        {"op": "replace", "path": "/spec/http/1/route/1/weight", "value": 25},
    ]
    assert apply_json_patch(routing, ops) == new
    assert json_patch(new, apply_traffic(new, REF, V1, V2, TrafficState(25))) == []  # idempotent: no write


def test_fqdn_hosts_match_short_names_but_not_other_namespaces():
    v = vs("r", [{"route": [dest("inference-v1.ml.svc.cluster.local", 100), dest("inference-v2.ml.svc.cluster.local", 0)]}])
    new = apply_traffic(v, VirtualServiceRef("r"), V1, V2, TrafficState(30))
    assert [r["weight"] for r in new["spec"]["http"][0]["route"]] == [70, 30]
    other_ns = Destination("inference-v2.other")
    with pytest.raises(IstioError, match="no route holds both"):
        apply_traffic(v, VirtualServiceRef("r"), V1, other_ns, TrafficState(30))
    assert istio.host_matches("inference-v2.ml", "inference-v2.ml.svc.cluster.local")


def test_missing_weights_are_written_and_the_patch_adds_them():
    v = vs("r", [{"name": "primary", "route": [dest("inference-v1"), dest("inference-v2")]}])
    new = apply_traffic(v, VirtualServiceRef("r", routes=("primary",)), V1, V2, TrafficState(10))
    ops = json_patch(v, new)
    assert [o["op"] for o in ops] == ["test", "add", "add"]
    assert apply_json_patch(v, ops) == new
    assert_valid(new, VIRTUALSERVICE_CRD)


# --------------------------------------------------------------------------- finding routes


def test_ambiguous_weighted_routes_must_be_named():
    http = [{"name": "a", "match": [{"uri": {"prefix": "/a"}}], "route": [dest("inference-v1", 100), dest("inference-v2", 0)]},
            {"name": "b", "route": [dest("inference-v1", 100), dest("inference-v2", 0)]}]
    v = vs("r", http)
    with pytest.raises(IstioError, match=r"2 http routes hold both .* name the weighted one"):
        apply_traffic(v, VirtualServiceRef("r"), V1, V2, TrafficState(10))
    new = apply_traffic(v, VirtualServiceRef("r", routes=("a", "b")), V1, V2, TrafficState(10))
    assert [[d["weight"] for d in r["route"]] for r in new["spec"]["http"]] == [[90, 10], [90, 10]]
    with pytest.raises(IstioError, match="HTTP route 'c' not found"):
        apply_traffic(v, VirtualServiceRef("r", routes=("c",)), V1, V2, TrafficState(10))


def test_named_route_without_the_canary_is_an_error():
    v = vs("r", [{"name": "main", "route": [dest("inference-v1", 100), dest("other", 0)]}])
    with pytest.raises(IstioError, match="canary destination inference-v2 not found in route http\\[0\\] \\(main\\)"):
        apply_traffic(v, VirtualServiceRef("r", routes=("main",)), V1, V2, TrafficState(10))


def test_third_destination_is_kept_at_zero_and_refused_when_weighted():
    v = vs("r", [{"route": [dest("inference-v1", 90), dest("inference-v2", 10), dest("inference-v0", 0)]}])
    new = apply_traffic(v, VirtualServiceRef("r"), V1, V2, TrafficState(40))
    assert [d["weight"] for d in new["spec"]["http"][0]["route"]] == [60, 40, 0]
    v["spec"]["http"][0]["route"][2]["weight"] = 5
    with pytest.raises(IstioError, match="neither stable nor canary .* refusing to drop it"):
        apply_traffic(v, VirtualServiceRef("r"), V1, V2, TrafficState(40))


def test_subset_level_split():
    stable, canary = Destination("inference", "v1"), Destination("inference", "v2")
    v = vs("r", [{"route": [dest("inference", 100, subset="v1"), dest("inference", 0, subset="v2")]},
                 {"name": "other", "route": [dest("inference", subset="v0")]}])
    new = apply_traffic(v, VirtualServiceRef("r"), stable, canary, TrafficState(20, (PIN,), managed=("pin-v2",)))
    assert new["spec"]["http"][0]["route"] == [dest("inference", subset="v2") | {"weight": 100}]  # header route
    assert [d["weight"] for d in new["spec"]["http"][1]["route"]] == [80, 20]
    assert new["spec"]["http"][2] == v["spec"]["http"][1]
    assert_valid(new, VIRTUALSERVICE_CRD)
    # a subset given without host matches the subset on any host
    assert find_weighted_routes(v, VirtualServiceRef("r"), Destination(subset="v1"), Destination(subset="v2"))


def test_tls_and_tcp_routes_by_port_and_sni():
    v = vs("edge", None,
           tls=[{"match": [{"port": 443, "sniHosts": ["a.example"]}], "route": [dest("inference-v1", 100), dest("inference-v2", 0)]},
                {"match": [{"port": 443, "sniHosts": ["b.example"]}], "route": [dest("b-svc")]}],
           tcp=[{"match": [{"port": 9000}], "route": [dest("inference-v1", 100), dest("inference-v2", 0)]},
                {"match": [{"port": 9001}], "route": [dest("x")]}])
    ref = VirtualServiceRef("edge", tls_routes=(TLSRouteRef(443, ("a.example",)),), tcp_routes=(TCPRouteRef(9000),))
    new = apply_traffic(v, ref, V1, V2, TrafficState(35))
    assert [d["weight"] for d in new["spec"]["tls"][0]["route"]] == [65, 35]
    assert [d["weight"] for d in new["spec"]["tcp"][0]["route"]] == [65, 35]
    assert new["spec"]["tls"][1] == v["spec"]["tls"][1] and new["spec"]["tcp"][1] == v["spec"]["tcp"][1]
    assert "http" not in new["spec"]  # TLS/TCP take weights only; no managed routes appear
    auto = apply_traffic(v, VirtualServiceRef("edge"), V1, V2, TrafficState(35))
    assert auto == new
    assert_valid(new, VIRTUALSERVICE_CRD)
    with pytest.raises(IstioError, match="no TLS route with port 443"):
        apply_traffic(v, VirtualServiceRef("edge", tls_routes=(TLSRouteRef(443, ("c.example",)),)), V1, V2, TrafficState(1))
    with pytest.raises(IstioError, match="no TCP route with port 1"):
        apply_traffic(v, VirtualServiceRef("edge", tcp_routes=(TCPRouteRef(1),)), V1, V2, TrafficState(1))


# --------------------------------------------------------------------------- managed routes


def test_header_route_on_top_then_removed_leaving_the_seed_exactly_as_it_was():
    routing, _ = seed()
    state = TrafficState(5, (PIN,), managed=("pin-v2",))
    new = apply_traffic(routing, REF, V1, V2, state)
    http = new["spec"]["http"]
    assert http[0] == {"name": "pin-v2",
                       "match": [{"headers": {"x-canary": {"exact": "1"}}}, {"headers": {"x-tenant": {"prefix": "beta-"}}}],
                       "route": [{"destination": {"host": "inference-v2", "port": {"number": 8000}}, "weight": 100}]}
    assert http[1] == routing["spec"]["http"][0]  # the seed's header route, same content, pushed down
    assert_valid(new, VIRTUALSERVICE_CRD)
    ops = json_patch(routing, new)
    assert ops[0] == {"op": "test", "path": "/spec/http", "value": routing["spec"]["http"]}
    assert apply_json_patch(routing, ops) == new
    back = apply_traffic(new, REF, V1, V2, TrafficState(0, managed=("pin-v2",)))
    expected = copy.deepcopy(routing)
    expected["spec"]["http"][1]["route"][0]["weight"] = 100
    expected["spec"]["http"][1]["route"][1]["weight"] = 0
    assert back == expected


def test_mirror_route_copies_the_split_and_follows_the_weight():
    routing, _ = seed()
    state = TrafficState(10, (PIN,), (SHADOW,), managed=("shadow", "pin-v2"))
    new = apply_traffic(routing, REF, V1, V2, state)
    http = new["spec"]["http"]
    assert [r.get("name") for r in http[:2]] == ["shadow", "pin-v2"]  # managedRoutes precedence
    mirror = http[0]
    assert mirror["match"] == [{"method": {"exact": "POST"}, "uri": {"prefix": "/v2/models"},
                                "headers": {"x-debug": {"regex": "on|yes"}}}]
    assert [d["weight"] for d in mirror["route"]] == [90, 10]
    assert mirror["mirror"] == {"host": "inference-v2", "port": {"number": 8000}}
    assert mirror["mirrorPercentage"] == {"value": 25.0}
    assert_valid(new, VIRTUALSERVICE_CRD)
    later = apply_traffic(new, REF, V1, V2, dataclass_replace(state, weight=40))
    assert [d["weight"] for d in later["spec"]["http"][0]["route"]] == [60, 40]
    assert [d["weight"] for d in later["spec"]["http"][3]["route"]] == [60, 40]


def dataclass_replace(obj: Any, **kw: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_several_virtual_services_get_the_same_weight_and_routes():
    a = vs("a", [{"route": [dest("inference-v1", 100), dest("inference-v2", 0)]}])
    b = vs("b", [{"name": "w", "route": [dest("inference-v2", 0), dest("inference-v1", 100)]},
                 {"name": "static", "route": [dest("docs")]}])
    store = MemoryObjects()
    for v in (a, b):
        store.put(istio.GROUP, istio.PLURAL, v)
    routing = IstioRouting((VirtualServiceRef("a"), VirtualServiceRef("b", routes=("w",))))
    router = IstioRouter(store, routing, V1, V2, "default")
    state = TrafficState(15, (PIN,), managed=("pin-v2",))
    obs = router.apply(state)
    assert obs.weight == 15 and obs.routes == {"pin-v2"} and not obs.problems
    got_a = store.get(istio.GROUP, "v1", istio.PLURAL, "default", "a")
    got_b = store.get(istio.GROUP, "v1", istio.PLURAL, "default", "b")
    assert [d["weight"] for d in got_b["spec"]["http"][1]["route"]] == [15, 85]
    assert got_b["spec"]["http"][2] == b["spec"]["http"][1]
    assert got_a["spec"]["http"][0]["name"] == got_b["spec"]["http"][0]["name"] == "pin-v2"
    for v in (got_a, got_b):
        assert_valid(v, VIRTUALSERVICE_CRD)
    # one VirtualService changed behind our back: the read-back says the routes disagree
    got_b["spec"]["http"][1]["route"][0]["weight"] = 50
    got_b["spec"]["http"][1]["route"][1]["weight"] = 50
    store.put(istio.GROUP, istio.PLURAL, got_b)
    obs = router.observe(state)
    assert obs.weight is None and any("disagree" in p for p in obs.problems)
    assert router.apply(state).weight == 15  # and the next apply puts it back


# --------------------------------------------------------------------------- read-back, validation


def test_observe_reports_non_100_splits_and_edited_managed_routes():
    routing, _ = seed()
    state = TrafficState(10, (PIN,), managed=("pin-v2",))
    assert observe([(REF, routing)], V1, V2, TrafficState(10)).weight == 10  # 90/10 as seeded
    assert observe([(REF, routing)], V1, V2, state).routes == frozenset()
    new = apply_traffic(routing, REF, V1, V2, state)
    ok = observe([(REF, new)], V1, V2, state)
    assert ok.weight == 10 and ok.routes == {"pin-v2"} and not ok.problems
    edited = copy.deepcopy(new)
    edited["spec"]["http"][0]["match"][0]["headers"]["x-canary"] = {"exact": "2"}
    assert any("differs" in p for p in observe([(REF, edited)], V1, V2, state).problems)
    skewed = copy.deepcopy(new)
    skewed["spec"]["http"][2]["route"][0]["weight"] = 3
    skewed["spec"]["http"][2]["route"][1]["weight"] = 1
    obs = observe([(REF, skewed)], V1, V2, state)
    assert obs.weight == 1 and any("not a 100-based split" in p for p in obs.problems)


def test_validate_catches_what_istio_rejects():
    bad = vs("r", [{"route": [dest("a", 0), dest("b", 0)]}, {"name": "x", "route": [dest("a", -1)]},
                   {"name": "x", "match": [{"headers": {"h": {"exact": "1", "prefix": "2"}}}], "route": [dest("a")]}])
    problems = istio.validate(bad)
    assert any("total destination weight = 0" in p for p in problems)
    assert any("must be an integer >= 0" in p for p in problems)
    assert any("duplicate route name 'x'" in p for p in problems)
    assert any("exactly one of exact, prefix, regex" in p for p in problems)


# --------------------------------------------------------------------------- concurrent writers


class InterleavingObjects(MemoryObjects):
    """Another writer edits the object between our read and our write, ``times`` times."""

    def __init__(self, mutate: Any, times: int = 1) -> None:
        super().__init__()
        self.mutate, self.times, self.conflicts = mutate, times, 0

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        if self.times:
            self.times -= 1
            key = (group, plural, namespace, name)
            self.mutate(self.objects[key])
        try:
            return super().json_patch(group, version, plural, namespace, name, ops)
        except WriteConflict:
            self.conflicts += 1
            raise


def test_concurrent_edit_fails_the_test_and_is_kept_after_retry():
    routing, ab = seed()

    def add_timeout(obj: dict[str, Any]) -> None:  # someone sets a timeout on the weighted route
        obj["spec"]["http"][1]["timeout"] = "30s"

    store = InterleavingObjects(add_timeout)
    store.put(istio.GROUP, istio.PLURAL, routing)
    router = IstioRouter(store, IstioRouting((REF,)), V1, V2, "default")
    obs = router.apply(TrafficState(25))
    assert store.conflicts == 1 and obs.weight == 25
    got = store.get(istio.GROUP, "v1", istio.PLURAL, "default", "inference-routing")
    assert got["spec"]["http"][1]["timeout"] == "30s"  # their change survived ours
    assert [d["weight"] for d in got["spec"]["http"][1]["route"]] == [75, 25]


def test_router_gives_up_after_repeated_conflicts():
    routing, _ = seed()
    flip = iter(range(100))

    def meddle(obj: dict[str, Any]) -> None:
        obj["spec"]["http"][1]["route"][0]["weight"] = 80 - next(flip)

    store = InterleavingObjects(meddle, times=100)
    store.put(istio.GROUP, istio.PLURAL, routing)
    with pytest.raises(IstioError, match="gave up after 5 conflicting writes"):
        IstioRouter(store, IstioRouting((REF,)), V1, V2, "default").apply(TrafficState(25))


def test_missing_virtual_service():
    with pytest.raises(IstioError, match="VirtualService default/nope not found"):
        IstioRouter(MemoryObjects(), IstioRouting((VirtualServiceRef("nope"),)), V1, V2, "default").observe(TrafficState(0))


# --------------------------------------------------------------------------- through the fake API server


class KubeCustomObjects:
    """The CustomObjects port over the real kubernetes client (what analyzer/kube will provide)."""

    def __init__(self, api_client: Any) -> None:
        self.api = kubernetes.client.CustomObjectsApi(api_client)

    def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.api.get_namespaced_custom_object(group, version, namespace, plural, name)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return self.api.patch_namespaced_custom_object(group, version, namespace, plural, name, ops,
                                                           _content_type="application/json-patch+json")
        except kubernetes.client.ApiException as exc:
            body = json.loads(exc.body or "{}")
            if exc.status == 409 or (exc.status == 422 and not (body.get("details") or {}).get("causes")):
                raise WriteConflict(body.get("message", "conflict")) from None
            raise


@pytest.mark.parametrize("fake_kube", [{"istio_webhook_enabled": True}], indirect=True)
def test_router_against_the_fake_api_server_with_another_writer(fake_kube):
    routing, ab = seed()
    fake_kube.create(routing)
    fake_kube.create(ab)
    api = KubeCustomObjects(fake_kube.api_client())
    router = IstioRouter(api, IstioRouting((REF,)), V1, V2, "default")
    assert router.apply(TrafficState(5, (PIN,), managed=("pin-v2",))).weight == 5

    original_patch = api.json_patch
    edits = {"n": 0}

    def patch_after_other_writer(*args: Any) -> dict[str, Any]:
        if not edits["n"]:
            edits["n"] += 1

            def retitle(obj: dict[str, Any]) -> None:
                obj["spec"]["http"][2]["retries"] = {"attempts": 3}

            fake_kube.simulate_other_writer("networking.istio.io/v1", "VirtualService", "inference-routing", retitle)
        return original_patch(*args)

    api.json_patch = patch_after_other_writer  # type: ignore[method-assign]
    obs = router.apply(TrafficState(25, (PIN,), managed=("pin-v2",)))
    assert obs.weight == 25 and obs.routes == {"pin-v2"} and not obs.problems
    got = fake_kube.get("networking.istio.io/v1", "VirtualService", "inference-routing")
    assert got["spec"]["http"][2]["retries"] == {"attempts": 3}
    assert fake_kube.get("networking.istio.io/v1", "VirtualService", "ab-testing")["spec"] == ab["spec"]
    assert_valid(got, VIRTUALSERVICE_CRD)
    # end of the rollout: weights to the canary, managed routes gone, the seed's routes intact
    assert router.apply(TrafficState(100, managed=("pin-v2",), promoted=True)).weight == 100
    got = fake_kube.get("networking.istio.io/v1", "VirtualService", "inference-routing")
    assert [r.get("name") for r in got["spec"]["http"]] == [None, None]
    assert got["spec"]["http"][0] == routing["spec"]["http"][0]
    writes = fake_kube.audit("networking.istio.io/v1", "VirtualService", "inference-routing")
    assert len(writes) >= 4
