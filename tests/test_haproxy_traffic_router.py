"""HAProxyTrafficRouter (the TrafficRouter port) against a real HAProxy in front of two real HTTP
backends. Shares are measured from the backends' own request counters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_haproxy_router import Backend, send

from analyzer.core.steps import (
    HAProxyRouting,
    HeaderMatch,
    HeaderRoute,
    MatchKind,
    MirrorRoute,
    StringMatch,
    TrafficState,
)
from analyzer.localhaproxy import LocalHAProxy, haproxy_available
from analyzer.ports import RouterError
from analyzer.routers.haproxy import HAProxyTrafficRouter, RuntimeAPI

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="haproxy is not on PATH "
                                "(apt-get install -y haproxy; make test installs it)")

PIN = HeaderRoute("pin-v2", (HeaderMatch("x-model-version", StringMatch(MatchKind.EXACT, "v2")),))
MANAGED = ("pin-v2", "pin-beta")


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[LocalHAProxy, Backend, Backend]]:
    stable, canary = Backend("v1"), Backend("v2")
    with LocalHAProxy(stable.addr, canary.addr) as hap:
        yield hap, stable, canary
    stable.server.shutdown()
    canary.server.shutdown()


def routing(hap: LocalHAProxy) -> HAProxyRouting:
    return HAProxyRouting(socket=str(hap.workdir / "admin.sock"), header_map=str(hap.workdir / "header-routes.map"))


@pytest.fixture
def router(proxy: tuple[LocalHAProxy, Backend, Backend]) -> Iterator[HAProxyTrafficRouter]:
    hap, _, _ = proxy
    r = HAProxyTrafficRouter(routing(hap))
    yield r
    r.apply(TrafficState(0, managed=MANAGED))  # leave the module's HAProxy on stable


@pytest.mark.parametrize("percent", [5, 25, 50, 100])
def test_apply_sets_the_split_and_reads_it_back(proxy: tuple[LocalHAProxy, Backend, Backend],
                                                router: HAProxyTrafficRouter, percent: int) -> None:
    hap, stable, canary = proxy
    obs = router.apply(TrafficState(percent, managed=MANAGED))
    assert obs.weight == percent and obs.problems == () and obs.routes == frozenset()
    stable.reset()
    canary.reset()
    send(hap, 200)
    assert abs(canary.hits / 200 - percent / 100) <= 0.02


def test_header_route_pins_to_canary_and_is_removed_when_not_wanted(
        proxy: tuple[LocalHAProxy, Backend, Backend], router: HAProxyTrafficRouter) -> None:
    hap, _, _ = proxy
    obs = router.apply(TrafficState(0, header_routes=(PIN,), managed=MANAGED))
    assert obs.weight == 0 and obs.routes == {"pin-v2"} and not obs.problems
    assert set(send(hap, 20, {"x-model-version": "v2"})) == {"v2"}
    assert set(send(hap, 20, {"x-model-version": "v1"})) == {"v1"}
    assert set(send(hap, 20)) == {"v1"}
    again = router.apply(TrafficState(0, header_routes=(PIN,), managed=MANAGED))  # idempotent
    assert again == obs
    obs = router.apply(TrafficState(0, managed=MANAGED))
    assert obs.routes == frozenset() and router.header_map() == {}
    assert set(send(hap, 20, {"x-model-version": "v2"})) == {"v1"}


def test_foreign_map_entries_are_reported_then_removed(proxy: tuple[LocalHAProxy, Backend, Backend],
                                                       router: HAProxyTrafficRouter) -> None:
    hap, _, _ = proxy
    RuntimeAPI(hap.workdir / "admin.sock").command(f"add map {hap.workdir / 'header-routes.map'} beta be_canary")
    seen = router.observe(TrafficState(0, managed=MANAGED))
    assert any("entries no route wants: beta" in p for p in seen.problems)
    assert router.apply(TrafficState(0, managed=MANAGED)).problems == ()
    assert router.header_map() == {}


def test_another_writer_shows_in_observe(proxy: tuple[LocalHAProxy, Backend, Backend],
                                         router: HAProxyTrafficRouter) -> None:
    hap, _, _ = proxy
    router.apply(TrafficState(25))
    RuntimeAPI(hap.workdir / "admin.sock").command("set server be_app/canary weight 225")
    assert router.observe(TrafficState(25)).weight == 75  # 225 / (225 + 75 stable)
    assert router.apply(TrafficState(25)).weight == 25


def test_a_canary_in_maintenance_is_a_problem(proxy: tuple[LocalHAProxy, Backend, Backend],
                                              router: HAProxyTrafficRouter) -> None:
    hap, _, _ = proxy
    api = RuntimeAPI(hap.workdir / "admin.sock")
    router.apply(TrafficState(50))
    api.command("disable server be_app/canary")
    try:
        obs = router.observe(TrafficState(50))
        assert obs.weight == 50
        assert any("canary server be_app/canary is in maintenance" in p for p in obs.problems)
    finally:
        api.command("enable server be_app/canary")


def test_what_haproxy_cannot_do_is_a_router_error(proxy: tuple[LocalHAProxy, Backend, Backend]) -> None:
    hap, _, _ = proxy
    r = HAProxyTrafficRouter(routing(hap))
    prefix = HeaderRoute("p", (HeaderMatch("x-model-version", StringMatch(MatchKind.PREFIX, "v")),))
    with pytest.raises(RouterError, match="only exact values"):
        r.apply(TrafficState(0, header_routes=(prefix,)))
    with pytest.raises(RouterError, match="no mirror routes"):
        r.apply(TrafficState(0, mirror_routes=(MirrorRoute("m"),)))
    no_map = HAProxyTrafficRouter(HAProxyRouting(socket=str(hap.workdir / "admin.sock")))
    with pytest.raises(RouterError, match="needs trafficRouting.haproxy.headerMap"):
        no_map.apply(TrafficState(0, header_routes=(PIN,)))
    wrong = HAProxyTrafficRouter(HAProxyRouting(socket=str(hap.workdir / "admin.sock"), backend="be_nope"))
    with pytest.raises(RouterError, match="be_nope"):
        wrong.observe(TrafficState(0))
    wrong_server = HAProxyTrafficRouter(HAProxyRouting(socket=str(hap.workdir / "admin.sock"), canary_server="v2"))
    with pytest.raises(RouterError, match="has no server 'v2'"):
        wrong_server.observe(TrafficState(0))


def test_unreachable_socket_is_a_router_error(tmp_path: Path) -> None:
    r = HAProxyTrafficRouter(HAProxyRouting(socket=str(tmp_path / "gone.sock")))
    with pytest.raises(RouterError, match="cannot reach the HAProxy runtime API at .*gone.sock"):
        r.apply(TrafficState(10))
    with pytest.raises(RouterError, match="cannot reach"):
        r.observe(TrafficState(10))


# -- spec.trafficRouting.haproxy ----------------------------------------------------------------


def _rollout(haproxy: dict[str, object], steps: list[dict[str, object]] | None = None,
             **routing: object) -> dict[str, object]:
    return {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "r"},
            "spec": {"trafficRouting": {"haproxy": haproxy, **routing},
                     "steps": steps or [{"setWeight": 5}, {"pause": {"duration": "1m"}}]}}


def test_model_rollout_with_haproxy_routing_parses_and_matches_the_crd() -> None:
    from crd_validation import MODELROLLOUT_CRD, assert_valid

    from analyzer.rollout.spec import parse_rollout

    doc = _rollout({"socket": "/run/haproxy/admin.sock", "backend": "be_model", "stableServer": "v1",
                    "canaryServer": "v2", "headerMap": "/etc/haproxy/routes.map", "header": "X-Model-Version"},
                   [{"setHeaderRoute": {"name": "pin", "match": [{"headerName": "x-model-version",
                                                                  "headerValue": {"exact": "v2"}}]}},
                    {"setWeight": 5}])
    assert_valid(doc, MODELROLLOUT_CRD)
    spec, _ = parse_rollout(doc)
    assert spec.traffic.haproxy == HAProxyRouting(socket="/run/haproxy/admin.sock", backend="be_model",
                                                  stable_server="v1", canary_server="v2",
                                                  header_map="/etc/haproxy/routes.map", header="x-model-version")
    assert spec.traffic.istio is None and spec.traffic.kserve is None


@pytest.mark.parametrize(("doc", "message"), [
    (_rollout({"backend": "be_app"}), "spec.trafficRouting.haproxy.socket: required field is missing"),
    (_rollout({"socket": "/s", "sockett": 1}), "spec.trafficRouting.haproxy.sockett: unknown field"),
    (_rollout({"socket": "/s"}, kserve={"inferenceService": "m"}),
     "spec.trafficRouting: give kserve or haproxy, not both"),
    (_rollout({"socket": "/s", "headerMap": "/m"},
              [{"setHeaderRoute": {"name": "p", "match": [{"headerName": "x-model-version",
                                                           "headerValue": {"prefix": "v"}}]}}]),
     "spec.steps[0].setHeaderRoute.match[0].headerValue: HAProxy header routes match exact values only"),
    (_rollout({"socket": "/s", "headerMap": "/m"},
              [{"setHeaderRoute": {"name": "p", "match": [{"headerName": "x-user",
                                                           "headerValue": {"exact": "a"}}]}}]),
     "spec.steps[0].setHeaderRoute.match[0].headerName: HAProxy routes only on the header 'x-model-version'"),
    (_rollout({"socket": "/s"},
              [{"setHeaderRoute": {"name": "p", "match": [{"headerName": "x-model-version",
                                                           "headerValue": {"exact": "v2"}}]}}]),
     "spec.steps[0].setHeaderRoute: HAProxy header routes need trafficRouting.haproxy.headerMap"),
    (_rollout({"socket": "/s"}, [{"setMirrorRoute": {"name": "m", "match": [{"method": {"exact": "GET"}}]}}]),
     "spec.steps[0].setMirrorRoute: HAProxy routing has no mirror routes"),
])
def test_bad_haproxy_routing_is_named_by_field(doc: dict[str, object], message: str) -> None:
    from analyzer.rollout.spec import RolloutSpecError, parse_rollout

    with pytest.raises(RolloutSpecError) as err:
        parse_rollout(doc, "r.yaml")
    assert f"r.yaml: {message}" in str(err.value)
