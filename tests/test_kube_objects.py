"""KubeObjects (the routers' CustomObjects port) and KubeTemplates, through the real kubernetes
client against the fake API server: reads, 404s, guarded JSON patches, and the Istio router end to
end on the seed's VirtualServices."""

from __future__ import annotations

import copy

import pytest
import yaml
from crd_validation import VIRTUALSERVICE_CRD, assert_valid
from test_kube_support import REPO, SEEDS, settled_requests

from analyzer.core.steps import (
    Destination,
    HeaderMatch,
    HeaderRoute,
    IstioRouting,
    MatchKind,
    StringMatch,
    TrafficState,
    VirtualServiceRef,
)
from analyzer.kube.errors import KubeError, KubeNotFound
from analyzer.kube.objects import KubeObjects
from analyzer.kube.templates import KubeTemplates
from analyzer.ports import NotFound, WriteConflict
from analyzer.routers.istio import IstioRouter

VS = ("networking.istio.io", "v1", "virtualservices")
VS_KIND = ("networking.istio.io/v1", "VirtualService")


def seed_vs() -> tuple[dict, dict]:
    routing, ab = [d for d in yaml.safe_load_all((SEEDS / "06-istio-traffic-split.yaml").read_text()) if d]
    return routing, ab


@pytest.fixture
def objects(fake_kube):
    routing, ab = seed_vs()
    fake_kube.create(routing)
    fake_kube.create(ab)
    return KubeObjects(fake_kube.api_client())


def test_get_returns_the_object_and_none_for_404(objects):
    vs = objects.get(*VS, "default", "inference-routing")
    assert vs is not None and vs["metadata"]["name"] == "inference-routing"
    assert vs["spec"]["http"][1]["route"][0]["weight"] == 90
    assert objects.get(*VS, "default", "nope") is None
    assert objects.get(*VS, "other-namespace", "inference-routing") is None


def test_json_patch_applies_and_a_failing_test_is_a_write_conflict(fake_kube, objects):
    ops = [{"op": "test", "path": "/spec/http/1/route/0/weight", "value": 90},
           {"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 80},
           {"op": "replace", "path": "/spec/http/1/route/1/weight", "value": 20}]
    out = objects.json_patch(*VS, "default", "inference-routing", ops)
    assert [d["weight"] for d in out["spec"]["http"][1]["route"]] == [80, 20]
    before = fake_kube.get(*VS_KIND, "inference-routing")
    # the same patch again: its test (weight 90) no longer holds -> 422 from the server -> WriteConflict
    with pytest.raises(WriteConflict, match="virtualservices.networking.istio.io default/inference-routing"):
        objects.json_patch(*VS, "default", "inference-routing", ops)
    after = fake_kube.get(*VS_KIND, "inference-routing")
    assert after == before  # nothing written
    # a stale resourceVersion via replace -> 409 -> WriteConflict too
    stale = [{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"},
             {"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 70}]
    with pytest.raises(WriteConflict, match="409"):
        objects.json_patch(*VS, "default", "inference-routing", stale)
    assert fake_kube.get(*VS_KIND, "inference-routing") == before
    calls = [r for r in settled_requests(fake_kube) if r["method"] == "PATCH"]
    assert {r["content_type"].split(";")[0] for r in calls} == {"application/json-patch+json"}


def test_schema_errors_and_missing_objects_are_kube_errors_not_conflicts(fake_kube, objects):
    bad = [{"op": "replace", "path": "/spec/http/1/route/0/weight", "value": "ninety"}]
    with pytest.raises(KubeError, match=r"422 Invalid: .*spec.http\[1\].route\[0\].weight") as err:
        objects.json_patch(*VS, "default", "inference-routing", bad)
    assert not isinstance(err.value, WriteConflict)
    with pytest.raises(KubeNotFound, match="404 NotFound") as missing:
        objects.json_patch(*VS, "default", "gone", [{"op": "add", "path": "/spec/hosts/-", "value": "x"}])
    assert isinstance(missing.value, NotFound)
    fake_kube.inject_error("GET", r"/virtualservices/inference-routing$", code=500, times=1)
    with pytest.raises(KubeError, match=r"get virtualservices.networking.istio.io default/inference-routing: 500 InternalError: injected"):
        objects.get(*VS, "default", "inference-routing")


def test_istio_router_end_to_end_changes_only_the_weighted_route(fake_kube, objects):
    routing, ab = seed_vs()
    pin = HeaderRoute("pin-v2", (HeaderMatch("x-canary", StringMatch(MatchKind.EXACT, "1")),))
    router = IstioRouter(objects, IstioRouting((VirtualServiceRef("inference-routing"),)),
                         Destination("inference-v1"), Destination("inference-v2"), "default")
    for weight in (5, 25, 50):
        assert router.apply(TrafficState(weight)).weight == weight
        got = fake_kube.get(*VS_KIND, "inference-routing")
        assert got["spec"]["http"][0] == routing["spec"]["http"][0]  # x-model-version: v2 header route
        want = copy.deepcopy(routing["spec"]["http"][1])
        want["route"][0]["weight"], want["route"][1]["weight"] = 100 - weight, weight
        assert got["spec"]["http"][1] == want
        assert got["spec"]["hosts"] == routing["spec"]["hosts"] and len(got["spec"]["http"]) == 2
        assert_valid(got, VIRTUALSERVICE_CRD)
    # a managed header route goes on top, then away again
    assert router.apply(TrafficState(50, (pin,), managed=("pin-v2",))).routes == frozenset({"pin-v2"})
    assert fake_kube.get(*VS_KIND, "inference-routing")["spec"]["http"][0]["name"] == "pin-v2"
    assert router.apply(TrafficState(100, managed=("pin-v2",), promoted=True)).weight == 100
    got = fake_kube.get(*VS_KIND, "inference-routing")
    assert [r.get("name") for r in got["spec"]["http"]] == [None, None]
    assert got["spec"]["http"][0] == routing["spec"]["http"][0]
    assert fake_kube.get(*VS_KIND, "ab-testing")["spec"] == ab["spec"]  # the A/B VirtualService untouched
    assert not fake_kube.audit(*VS_KIND, "ab-testing")[1:]  # never written after its creation


def test_router_rereads_when_another_writer_edits_between_read_and_write(fake_kube):
    routing, _ = seed_vs()
    fake_kube.create(routing)
    edits = []

    class Interleaved(KubeObjects):
        def json_patch(self, *args, **kw):  # another controller writes after our read, once
            if not edits:
                def retry(vs):
                    vs["spec"]["http"][1]["retries"] = {"attempts": 3}
                edits.append(fake_kube.simulate_other_writer(*VS_KIND, "inference-routing", retry))
            return super().json_patch(*args, **kw)

    router = IstioRouter(Interleaved(fake_kube.api_client()), IstioRouting((VirtualServiceRef("inference-routing"),)),
                         Destination("inference-v1"), Destination("inference-v2"), "default")
    assert router.apply(TrafficState(25)).weight == 25
    got = fake_kube.get(*VS_KIND, "inference-routing")
    assert got["spec"]["http"][1]["retries"] == {"attempts": 3}  # the other writer's edit survives
    assert [d["weight"] for d in got["spec"]["http"][1]["route"]] == [75, 25]
    codes = [r["code"] for r in settled_requests(fake_kube) if r["method"] == "PATCH"]
    assert codes == [422, 200]  # the first, stale patch was refused by its test, then recomputed


def test_templates_namespaced_and_cluster_scoped(fake_kube):
    tpl = yaml.safe_load((REPO / "templates" / "success-rate.yaml").read_text())
    fake_kube.create(tpl, namespace="default")
    cluster = copy.deepcopy(tpl)
    cluster["kind"] = "ClusterAnalysisTemplate"
    cluster["metadata"] = {"name": "shared-success-rate"}
    fake_kube.create(cluster)
    src = KubeTemplates(fake_kube.api_client())
    got = src.get("default", "success-rate")
    assert got is not None and got["kind"] == "AnalysisTemplate" and got["spec"]["metrics"] == tpl["spec"]["metrics"]
    assert src.get("other", "success-rate") is None
    assert src.get("default", "success-rate", cluster_scope=True) is None
    got = src.get("whatever", "shared-success-rate", cluster_scope=True)
    assert got is not None and got["kind"] == "ClusterAnalysisTemplate"
    assert src.get("default", "shared-success-rate") is None
    fake_kube.inject_error("GET", r"/analysistemplates/", code=403, times=1, reason="Forbidden", message="no access")
    with pytest.raises(KubeError, match="get analysistemplates.argoproj.io default/success-rate: 403 Forbidden: no access"):
        src.get("default", "success-rate")
