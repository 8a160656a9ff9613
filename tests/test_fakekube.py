"""The fake API server (tests/fakekube) exercised through the real ``kubernetes`` client.

Each test pins a behaviour of kube-apiserver listed in /work/shared/kube-api-semantics.md
(section 10 checklist numbers in brackets), so code tested against the fake meets the same
rules in production."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakekube import FakeKube, FakeKubeProcess, istio_webhook
from fakekube.fixtures import fake_kube  # noqa: F401 - fixture
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEEDS = Path(__file__).parent / "data" / "seed-manifests"  # a copy of ../shared/seed-manifests
IST = ("networking.istio.io", "v1", "default", "virtualservices")
JSON_PATCH = "application/json-patch+json"


def vs(name: str = "reviews", weights: tuple[int, int] = (90, 10), **extra: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {
            "hosts": ["inference.ml.svc.cluster.local"],
            "http": [{"name": "primary", "route": [
                {"destination": {"host": "inference-v1"}, "weight": weights[0]},
                {"destination": {"host": "inference-v2"}, "weight": weights[1]},
            ]}],
        },
    }
    obj.update(extra)
    return obj


def status_of(exc: ApiException) -> dict[str, Any]:
    body = exc.body.decode() if isinstance(exc.body, bytes) else exc.body
    return json.loads(body)


def http_info(resp: Any) -> tuple[Any, int, Any]:
    """``*_with_http_info`` returns a (data, status, headers) tuple in v36 and v37."""
    if isinstance(resp, tuple):
        return resp[0], resp[1], resp[2]
    return resp.data, resp.status_code, resp.headers


def utc_micro() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond or 1)


@pytest.fixture
def custom(fake_kube: FakeKube) -> client.CustomObjectsApi:  # noqa: F811 - fixture parameter
    return client.CustomObjectsApi(fake_kube.api_client())


@pytest.fixture
def leases(fake_kube: FakeKube) -> client.CoordinationV1Api:  # noqa: F811
    return client.CoordinationV1Api(fake_kube.api_client())


@pytest.fixture
def apps(fake_kube: FakeKube) -> client.AppsV1Api:  # noqa: F811
    return client.AppsV1Api(fake_kube.api_client())


def deployment(name: str = "inference-v2", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": "inference"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "inference", "version": name}},
                 "template": {"metadata": {"labels": {"app": "inference", "version": name}},
                              "spec": {"containers": [{"name": "server", "image": "inference:v2"}]}}},
    }


# ---------------------------------------------------------------------------------------- CRUD


def test_crud_on_a_virtualservice(custom: client.CustomObjectsApi) -> None:
    body = vs()
    body["metadata"]["uid"] = "client-chosen"
    created = custom.create_namespaced_custom_object(*IST, body)  # [1]
    meta = created["metadata"]
    assert meta["uid"] != "client-chosen" and re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1 and meta["resourceVersion"].isdigit() and meta["namespace"] == "default"
    assert "selfLink" not in meta and meta["managedFields"][0]["manager"] == "OpenAPI-Generator"

    got = custom.get_namespaced_custom_object(*IST, "reviews")
    assert got["spec"] == body["spec"] and got["kind"] == "VirtualService"

    listed = custom.list_namespaced_custom_object(*IST)  # [22]
    assert listed["kind"] == "VirtualServiceList" and listed["metadata"]["continue"] == ""
    assert listed["metadata"]["resourceVersion"].isdigit()
    assert [(i["apiVersion"], i["kind"]) for i in listed["items"]] == [("networking.istio.io/v1", "VirtualService")]

    with pytest.raises(ApiException) as exc:  # [2]
        custom.create_namespaced_custom_object(*IST, vs())
    assert exc.value.status == 409 and exc.value.reason == "Conflict"
    st = status_of(exc.value)
    assert st["reason"] == "AlreadyExists"
    assert st["details"] == {"name": "reviews", "group": "networking.istio.io", "kind": "virtualservices"}

    deleted = custom.delete_namespaced_custom_object(*IST, "reviews")
    assert deleted["status"] == "Success" and deleted["details"]["kind"] == "virtualservices"
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(*IST, "reviews")
    assert exc.value.status == 404 and exc.value.reason == "Not Found"
    assert status_of(exc.value)["message"] == 'virtualservices.networking.istio.io "reviews" not found'


def test_create_with_resource_version_is_a_500_and_creates_nothing(custom: client.CustomObjectsApi) -> None:
    body = vs()
    body["metadata"]["resourceVersion"] = "5"
    with pytest.raises(ApiException) as exc:  # [3]
        custom.create_namespaced_custom_object(*IST, body)
    st = status_of(exc.value)
    assert exc.value.status == 500 and st["message"] == "resourceVersion should not be set on objects to be created"
    assert "reason" not in st
    assert custom.list_namespaced_custom_object(*IST)["items"] == []


def test_create_in_a_missing_namespace_is_404(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("networking.istio.io", "v1", "nope", "virtualservices", vs())
    assert exc.value.status == 404 and status_of(exc.value)["message"] == 'namespaces "nope" not found'


def test_other_served_versions_share_storage(custom: client.CustomObjectsApi) -> None:
    body = vs()
    body["apiVersion"] = "networking.istio.io/v1beta1"
    custom.create_namespaced_custom_object("networking.istio.io", "v1beta1", "default", "virtualservices", body)
    assert custom.get_namespaced_custom_object(*IST, "reviews")["apiVersion"] == "networking.istio.io/v1"
    body["apiVersion"] = "networking.istio.io/v1alpha3"
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("networking.istio.io", "v1", "default", "virtualservices", body)
    assert exc.value.status == 400 and "does not match the expected API version" in status_of(exc.value)["message"]


# ---------------------------------------------------------------------------------------- optimistic concurrency


def test_stale_put_is_409_and_changes_nothing(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    mine = custom.create_namespaced_custom_object(*IST, vs())
    other = fake_kube.simulate_other_writer("networking.istio.io/v1", "VirtualService", "reviews",
                                            lambda o: o["spec"]["http"][0]["route"][0].update(weight=80))
    mine["spec"]["http"][0]["route"][0]["weight"] = 50
    with pytest.raises(ApiException) as exc:  # [4]
        custom.replace_namespaced_custom_object(*IST, "reviews", mine)
    st = status_of(exc.value)
    assert exc.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == ('Operation cannot be fulfilled on virtualservices.networking.istio.io "reviews": the object has '
                             "been modified; please apply your changes to the latest version and try again")
    now = custom.get_namespaced_custom_object(*IST, "reviews")
    assert now["metadata"]["resourceVersion"] == other["metadata"]["resourceVersion"]
    assert now["spec"]["http"][0]["route"][0]["weight"] == 80


def test_put_without_resource_version(fake_kube: FakeKube, custom: client.CustomObjectsApi,  # noqa: F811
                                      leases: client.CoordinationV1Api, apps: client.AppsV1Api) -> None:
    obj = custom.create_namespaced_custom_object(*IST, vs())
    del obj["metadata"]["resourceVersion"]
    for call in (custom.replace_namespaced_custom_object, custom.replace_namespaced_custom_object_status):  # [5]
        with pytest.raises(ApiException) as exc:
            call(*IST, "reviews", obj)
        st = status_of(exc.value)
        assert exc.value.status == 422 and exc.value.reason == "Unprocessable Entity" and st["reason"] == "Invalid"
        assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                                            "message": "Invalid value: 0: must be specified for an update"}]
    lease = leases.create_namespaced_lease("default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"),
                                                                      spec=client.V1LeaseSpec(holder_identity="a")))
    lease.metadata.resource_version = None
    with pytest.raises(ApiException) as exc:
        leases.replace_namespaced_lease("l", "default", lease)
    assert exc.value.status == 422
    dep = apps.create_namespaced_deployment("default", deployment())
    dep.metadata.resource_version = None
    dep.spec.replicas = 3
    assert apps.replace_namespaced_deployment("inference-v2", "default", dep).spec.replicas == 3


def test_put_to_a_missing_object(custom: client.CustomObjectsApi, leases: client.CoordinationV1Api,
                                 apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as exc:  # [6]
        custom.replace_namespaced_custom_object(*IST, "reviews", vs())
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("inference-v2", "default", deployment())
    assert exc.value.status == 404
    data, code, _ = http_info(leases.replace_namespaced_lease_with_http_info(
        "ghost", "default", client.V1Lease(metadata=client.V1ObjectMeta(name="ghost"), spec=client.V1LeaseSpec(holder_identity="me"))))
    assert code == 201 and data.spec.holder_identity == "me"


def test_resource_versions_come_from_one_global_counter(custom: client.CustomObjectsApi, leases: client.CoordinationV1Api) -> None:
    rvs = []
    obj = custom.create_namespaced_custom_object(*IST, vs())
    rvs.append(int(obj["metadata"]["resourceVersion"]))
    for i in range(5):  # [7]
        leases.create_namespaced_lease("default", client.V1Lease(metadata=client.V1ObjectMeta(name=f"l{i}")))
        obj["spec"]["http"][0]["route"][0]["weight"] = 80 - i
        obj = custom.replace_namespaced_custom_object(*IST, "reviews", obj)
        rvs.append(int(obj["metadata"]["resourceVersion"]))
    assert rvs == sorted(set(rvs)) and all(b - a > 1 for a, b in zip(rvs, rvs[1:], strict=False))


def test_merge_patch_to_the_current_value_is_a_no_op(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    obj = custom.create_namespaced_custom_object(*IST, vs())
    before = len(fake_kube.audit(name="reviews"))
    same = custom.patch_namespaced_custom_object(*IST, "reviews", {"spec": {"hosts": obj["spec"]["hosts"]}})  # [8]
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert len(fake_kube.audit(name="reviews")) == before


def test_merge_patch_semantics_and_rv_precondition(custom: client.CustomObjectsApi) -> None:
    obj = custom.create_namespaced_custom_object(*IST, vs(), )
    patched = custom.patch_namespaced_custom_object(  # [12]
        *IST, "reviews", {"spec": {"http": [{"route": [{"destination": {"host": "inference-v1"}}]}], "gateways": None}})
    assert patched["spec"]["http"] == [{"route": [{"destination": {"host": "inference-v1"}}]}]
    with pytest.raises(ApiException) as exc:  # [13]
        custom.patch_namespaced_custom_object(
            *IST, "reviews", {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"hosts": ["x"]}})
    assert exc.value.status == 409 and status_of(exc.value)["reason"] == "Conflict"
    a = custom.patch_namespaced_custom_object(*IST, "reviews", {"spec": {"hosts": ["a"]}})
    b = custom.patch_namespaced_custom_object(*IST, "reviews", {"spec": {"gateways": ["mesh"]}})
    assert b["spec"]["hosts"] == ["a"] and int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    with pytest.raises(ApiException) as exc:  # a JSON-patch list sent with the default merge-patch type
        custom.patch_namespaced_custom_object(*IST, "reviews", [{"op": "replace", "path": "/spec/hosts", "value": ["b"]}])
    assert exc.value.status == 422


def test_json_patch_with_test_guards(custom: client.CustomObjectsApi) -> None:
    obj = custom.create_namespaced_custom_object(*IST, vs())
    ok = custom.patch_namespaced_custom_object(*IST, "reviews", [
        {"op": "test", "path": "/spec/http/0/route/1/destination/host", "value": "inference-v2"},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 75},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 25},
    ], _content_type=JSON_PATCH)
    assert [r["weight"] for r in ok["spec"]["http"][0]["route"]] == [75, 25]
    for ops in (
        [{"op": "test", "path": "/spec/http/0/route/1/weight", "value": 10}, {"op": "replace", "path": "/spec/hosts", "value": []}],
        [{"op": "test", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]}],
        [{"op": "replace", "path": "/spec/http/3/name", "value": "x"}],
    ):
        with pytest.raises(ApiException) as exc:  # [14]
            custom.patch_namespaced_custom_object(*IST, "reviews", ops, _content_type=JSON_PATCH)
        assert exc.value.status == 422
        assert status_of(exc.value) == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server rejected our request due to an error in our request", "reason": "Invalid",
            "details": {}, "code": 422}
    with pytest.raises(ApiException) as exc:  # replace of a stale RV is a 409, unlike test
        custom.patch_namespaced_custom_object(*IST, "reviews", [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]}],
            _content_type=JSON_PATCH)
    assert exc.value.status == 409
    assert custom.get_namespaced_custom_object(*IST, "reviews")["metadata"]["resourceVersion"] == ok["metadata"]["resourceVersion"]


def test_strategic_merge_patch(custom: client.CustomObjectsApi, apps: client.AppsV1Api) -> None:
    custom.create_namespaced_custom_object(*IST, vs())
    with pytest.raises(ApiException) as exc:  # [15]
        custom.patch_namespaced_custom_object(*IST, "reviews", {"spec": {"hosts": ["x"]}}, _content_type=JSON_PATCH)
    st = status_of(exc.value)
    assert exc.value.status == 415 and st["reason"] == "UnsupportedMediaType"
    assert st["message"].endswith("application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "proxy:1"})
    dep["metadata"]["finalizers"] = ["example.com/a"]
    apps.create_namespaced_deployment("default", dep)
    out = apps.patch_namespaced_deployment("inference-v2", "default", {  # dict body -> strategic merge patch
        "metadata": {"finalizers": ["example.com/b"]},
        "spec": {"template": {"spec": {"containers": [{"name": "server", "image": "inference:v3"}]}}}})
    assert [(c.name, c.image) for c in out.spec.template.spec.containers] == [("server", "inference:v3"), ("sidecar", "proxy:1")]
    assert out.metadata.finalizers == ["example.com/a", "example.com/b"]


def test_server_side_apply(custom: client.CustomObjectsApi) -> None:
    apply = "application/apply-patch+yaml"
    with pytest.raises(ApiException) as exc:  # [16]
        custom.patch_namespaced_custom_object(*IST, "reviews", vs(), _content_type=apply)
    assert exc.value.status == 422 and "fieldManager" in status_of(exc.value)["message"]
    _, code, _ = http_info(custom.patch_namespaced_custom_object_with_http_info(*IST, "reviews", vs(), _content_type=apply,
                                                                                field_manager="router"))
    assert code == 201
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(*IST, "reviews", vs(weights=(50, 50)), _content_type=apply, field_manager="someone")
    st = status_of(exc.value)
    assert exc.value.status == 409 and st["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    assert st["message"].startswith('Apply failed with 1 conflict: conflict with "router"')
    assert custom.get_namespaced_custom_object(*IST, "reviews")["spec"]["http"][0]["route"][0]["weight"] == 90
    forced = custom.patch_namespaced_custom_object(*IST, "reviews", vs(weights=(50, 50)), _content_type=apply,
                                                   field_manager="someone", force=True)
    assert forced["spec"]["http"][0]["route"][0]["weight"] == 50


# ---------------------------------------------------------------------------------------- generation, status, deletion


def test_generation_and_status_subresource(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    created = custom.create_namespaced_custom_object(*IST, {**vs(), "status": {"observedGeneration": 9}})
    assert "status" not in created
    obj = copy.deepcopy(created)
    obj["spec"]["http"][0]["route"][0]["weight"], obj["spec"]["hosts"] = 80, ["a", "b"]  # [9]
    obj = custom.replace_namespaced_custom_object(*IST, "reviews", obj)
    assert obj["metadata"]["generation"] == 2
    obj = custom.patch_namespaced_custom_object(*IST, "reviews", {"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"},
                                                                               "finalizers": ["example.com/f"]}})
    assert obj["metadata"]["generation"] == 2
    rv = obj["metadata"]["resourceVersion"]
    ignored = custom.patch_namespaced_custom_object(*IST, "reviews", {"status": {"observedGeneration": 2}})
    assert "status" not in ignored and ignored["metadata"]["resourceVersion"] == rv
    stream = watch.Watch().stream(custom.list_namespaced_custom_object, *IST, resource_version=rv, timeout_seconds=2)
    st = custom.patch_namespaced_custom_object_status(*IST, "reviews", {  # [10]
        "metadata": {"labels": {"x": "y"}, "finalizers": None}, "spec": {"hosts": ["zzz"]}, "status": {"observedGeneration": 2}})
    assert st["status"] == {"observedGeneration": 2} and st["spec"]["hosts"] == ["a", "b"]
    assert st["metadata"]["labels"] == {"a": "b"} and st["metadata"]["finalizers"] == ["example.com/f"]
    assert st["metadata"]["generation"] == 2 and st["metadata"]["resourceVersion"] != rv
    ev = next(stream)
    assert ev["type"] == "MODIFIED" and ev["object"]["status"] == {"observedGeneration": 2}
    code, body = fake_kube.request("DELETE", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews/status")
    assert (code, body["reason"]) == (405, "MethodNotAllowed")  # /status accepts only GET, PUT, PATCH


def test_deployment_generation_status_and_scale(apps: client.AppsV1Api, fake_kube: FakeKube) -> None:  # noqa: F811
    dep = apps.create_namespaced_deployment("default", deployment())
    assert dep.metadata.generation == 1 and dep.spec.strategy.rolling_update.max_surge == "25%"  # server defaulting
    dep = apps.patch_namespaced_deployment("inference-v2", "default", {"metadata": {"labels": {"team": "ml"}}})
    assert dep.metadata.generation == 1  # [11]
    dep = apps.patch_namespaced_deployment("inference-v2", "default", {"metadata": {"annotations": {"note": "x"}}})
    assert dep.metadata.generation == 2
    scale = apps.patch_namespaced_deployment_scale("inference-v2", "default", {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5 and scale.status.selector == "app=inference,version=inference-v2"
    assert apps.read_namespaced_deployment("inference-v2", "default").metadata.generation == 3
    fake_kube.set_deployment_ready("inference-v2", ready=3)
    st = apps.read_namespaced_deployment_status("inference-v2", "default").status
    assert (st.replicas, st.ready_replicas, st.observed_generation) == (5, 3, 3)
    assert apps.read_namespaced_deployment_scale("inference-v2", "default").status.replicas == 5


def test_delete_with_finalizers_and_preconditions(custom: client.CustomObjectsApi) -> None:
    obj = custom.create_namespaced_custom_object(*IST, {**vs(), "metadata": {"name": "reviews", "finalizers": ["example.com/f"]}})
    rv = obj["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:  # [17]
        custom.delete_namespaced_custom_object(*IST, "reviews", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version="1")))
    assert exc.value.status == 409 and "the ResourceVersion in the precondition (1)" in status_of(exc.value)["message"]
    stream = watch.Watch().stream(custom.list_namespaced_custom_object, *IST, resource_version=rv, timeout_seconds=3)
    pending = custom.delete_namespaced_custom_object(*IST, "reviews")  # [18]
    assert pending["metadata"]["deletionTimestamp"] and pending["metadata"]["generation"] == 2
    assert next(stream)["type"] == "MODIFIED"
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(*IST, "reviews", {"metadata": {"finalizers": ["example.com/f", "example.com/g"]}})
    assert exc.value.status == 422 and "no new finalizers can be added" in status_of(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*IST, vs())
    assert status_of(exc.value)["message"].startswith("object is being deleted: ")
    custom.patch_namespaced_custom_object(*IST, "reviews", {"metadata": {"finalizers": None}})
    gone = next(stream)
    assert gone["type"] == "DELETED" and gone["object"]["metadata"]["finalizers"] == ["example.com/f"]
    with pytest.raises(ApiException):
        custom.get_namespaced_custom_object(*IST, "reviews")


# ---------------------------------------------------------------------------------------- schema validation


def test_pruning_warnings_and_strict_field_validation(custom: client.CustomObjectsApi) -> None:
    body = vs()
    body["spec"]["http"][0]["rout"] = []
    body["spec"]["colour"] = "blue"
    data, code, headers = http_info(custom.create_namespaced_custom_object_with_http_info(*IST, body))  # [19]
    assert code == 201 and "colour" not in data["spec"] and "rout" not in data["spec"]["http"][0]
    warning = headers.get("Warning")
    assert 'unknown field \\"spec.colour\\"' in warning and 'spec.http[0].rout' in warning
    body["metadata"]["name"] = "strict"
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*IST, body, field_validation="Strict")
    assert exc.value.status == 400 and "strict decoding error: unknown field" in status_of(exc.value)["message"]


@pytest.mark.parametrize(("route", "field", "reason", "text"), [
    ({"destination": {"host": "a"}, "weight": "50"}, "spec.http[0].route[0].weight", "FieldValueTypeInvalid",
     'spec.http[0].route[0].weight in body must be of type integer: "string"'),
    ({"destination": {"host": "a"}, "weight": 33.3}, "spec.http[0].route[0].weight", "FieldValueTypeInvalid",
     'must be of type integer: "number"'),
    ({"destination": {"port": {"number": 80}}}, "spec.http[0].route[0].destination.host", "FieldValueRequired", "Required value"),
])
def test_schema_rejects_a_bad_virtualservice(custom: client.CustomObjectsApi, route: dict, field: str, reason: str, text: str) -> None:
    body = vs()
    body["spec"]["http"][0]["route"] = [route]
    with pytest.raises(ApiException) as exc:  # [20] [21]
        custom.create_namespaced_custom_object(*IST, body)
    st = status_of(exc.value)
    assert exc.value.status == 422 and st["reason"] == "Invalid" and st["details"]["kind"] == "VirtualService"
    assert st["message"].startswith('VirtualService.networking.istio.io "reviews" is invalid: ')
    cause = st["details"]["causes"][0]
    assert (cause["field"], cause["reason"]) == (field, reason) and text in cause["message"]


def test_schema_numbers_and_cel_duration_rule(custom: client.CustomObjectsApi) -> None:
    body = vs()
    body["spec"]["http"][0]["route"][0]["weight"] = 50.0
    assert custom.create_namespaced_custom_object(*IST, body)["spec"]["http"][0]["route"][0]["weight"] == 50  # [20]
    for timeout, text in (("0.5ms", "must be a valid duration greater than 1ms"), ("1d", "evaluating rule")):
        bad = vs(name="t" + timeout.replace(".", ""))
        bad["spec"]["http"][0]["timeout"] = timeout
        with pytest.raises(ApiException) as exc:  # [21]
            custom.create_namespaced_custom_object(*IST, bad)
        cause = status_of(exc.value)["details"]["causes"][0]
        assert cause["field"] == "spec.http[0].timeout" and text in cause["message"]
    ok = vs(name="ok")
    ok["spec"]["http"][0]["timeout"] = "1.5s"
    custom.create_namespaced_custom_object(*IST, ok)


def _seed_docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SEEDS / name).read_text()) if d]


def test_seed_manifests_are_accepted(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    for fname in ("06-istio-traffic-split.yaml", "04-kserve-canary.yaml", "05-argo-rollout-canary.yaml"):
        for doc in _seed_docs(fname):
            group, version = doc["apiVersion"].split("/")
            plural = doc["kind"].lower() + "s"
            created = custom.create_namespaced_custom_object(group, version, "default", plural, doc, field_validation="Strict")
            assert created["spec"]["hosts" if doc["kind"] == "VirtualService" else next(iter(doc["spec"]))]
    bad = _seed_docs("06-istio-traffic-split.yaml")[0]
    bad["spec"]["http"][1]["route"][0]["weight"] = "90"
    assert fake_kube.validate(bad) == [
        'spec.http[1].route[0].weight: Invalid value: "string": spec.http[1].route[0].weight in body must be of type integer: "string"',
        "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; "
        "correct the existing errors to complete validation"]
    isvc = custom.get_namespaced_custom_object("serving.kserve.io", "v1beta1", "default", "inferenceservices", "model-v2-canary")
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    split = custom.get_namespaced_custom_object(*IST, "inference-routing")
    assert [r.get("weight") for r in split["spec"]["http"][1]["route"]] == [90, 10]


# ---------------------------------------------------------------------------------------- list, selectors


def test_list_shapes_and_selectors(fake_kube: FakeKube, custom: client.CustomObjectsApi,  # noqa: F811
                                   leases: client.CoordinationV1Api) -> None:
    leases.create_namespaced_lease("default", client.V1Lease(metadata=client.V1ObjectMeta(name="a", labels={"app": "x"})))
    leases.create_namespaced_lease("default", client.V1Lease(metadata=client.V1ObjectMeta(name="b", labels={"app": "y"})))
    leases.create_namespaced_lease("default", client.V1Lease(metadata=client.V1ObjectMeta(name="c")))
    code, raw = fake_kube.request("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases")
    assert raw["kind"] == "LeaseList" and all("kind" not in i and "apiVersion" not in i for i in raw["items"])  # [22]
    names = [lease.metadata.name for lease in leases.list_namespaced_lease("default", label_selector="app!=x").items]
    assert names == ["b", "c"]  # [23]
    assert [x.metadata.name for x in leases.list_namespaced_lease("default", label_selector="app in (x,y)").items] == ["a", "b"]
    assert [x.metadata.name for x in leases.list_namespaced_lease("default", field_selector="metadata.name=c").items] == ["c"]
    page = leases.list_namespaced_lease("default", limit=2)
    rest = leases.list_namespaced_lease("default", limit=2, _continue=page.metadata._continue)
    assert [x.metadata.name for x in page.items + rest.items] == ["a", "b", "c"] and not rest.metadata._continue
    with pytest.raises(ApiException) as exc:
        custom.list_namespaced_custom_object(*IST, field_selector="spec.x=y")
    assert exc.value.status == 400 and status_of(exc.value)["message"] == "field label not supported: spec.x"


# ---------------------------------------------------------------------------------------- watch


def test_watch_initial_state_then_changes_in_order(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*IST, vs("a"))
    events = []
    for ev in watch.Watch().stream(custom.list_namespaced_custom_object, *IST, timeout_seconds=1):  # [24]
        events.append((ev["type"], ev["object"]["metadata"]["name"]))
    assert events == [("ADDED", "a")]
    listed = custom.list_namespaced_custom_object(*IST)
    custom.create_namespaced_custom_object(*IST, vs("b"))
    custom.patch_namespaced_custom_object(*IST, "a", {"spec": {"hosts": ["h"]}})
    custom.delete_namespaced_custom_object(*IST, "b")
    seen = []
    w = watch.Watch()
    for ev in w.stream(custom.list_namespaced_custom_object, *IST, resource_version=listed["metadata"]["resourceVersion"],
                       timeout_seconds=5):
        seen.append((ev["type"], ev["object"]["metadata"]["name"], int(ev["object"]["metadata"]["resourceVersion"])))
        if len(seen) == 3:
            w.stop()
    assert [s[:2] for s in seen] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert [s[2] for s in seen] == sorted(s[2] for s in seen)


def test_watch_selector_transitions(custom: client.CustomObjectsApi) -> None:
    obj = custom.create_namespaced_custom_object(*IST, {**vs(), "metadata": {"name": "reviews", "labels": {"managed": "yes"}}})
    stream = watch.Watch().stream(custom.list_namespaced_custom_object, *IST, label_selector="managed=yes",
                                  resource_version=obj["metadata"]["resourceVersion"], timeout_seconds=3)
    custom.patch_namespaced_custom_object(*IST, "reviews", {"metadata": {"labels": {"managed": "no"}}})
    custom.patch_namespaced_custom_object(*IST, "reviews", {"metadata": {"labels": {"managed": "yes"}}})
    assert [next(stream)["type"], next(stream)["type"]] == ["DELETED", "ADDED"]


@pytest.mark.parametrize("fake_kube", [{"bookmark_interval": 0.2}], indirect=True)
def test_watch_bookmarks_update_the_client_resource_version(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    custom.create_namespaced_custom_object(*IST, vs())
    rv = custom.list_namespaced_custom_object(*IST)["metadata"]["resourceVersion"]
    client.CoordinationV1Api(fake_kube.api_client()).create_namespaced_lease(
        "default", client.V1Lease(metadata=client.V1ObjectMeta(name="noise")))  # moves the global RV
    w = watch.Watch()
    for ev in w.stream(custom.list_namespaced_custom_object, *IST, resource_version=rv, allow_watch_bookmarks=True,
                       timeout_seconds=5):
        assert ev["type"] == "BOOKMARK"  # [25]
        assert set(ev["raw_object"]) == {"kind", "apiVersion", "metadata"} and set(ev["raw_object"]["metadata"]) == {"resourceVersion"}
        w.stop()
    assert int(w.resource_version) == int(fake_kube.resource_version) > int(rv)


def _settled_watch_requests(kube: FakeKube) -> int:
    """Watch requests logged so far, once the server threads have finished logging them."""
    def count() -> int:
        return len([r for r in kube.requests if "watch=true" in r["query"].lower()])
    last, deadline = count(), time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = count()
        if now == last:
            return now
        last = now
    return last


def test_watch_410_expired(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    old_rv = custom.list_namespaced_custom_object(*IST)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(*IST, vs())
    fake_kube.expire_history()
    with pytest.raises(ApiException) as exc:  # [26] with timeout_seconds: the first 410 raises
        list(watch.Watch().stream(custom.list_namespaced_custom_object, *IST, resource_version=old_rv, timeout_seconds=5))
    assert exc.value.status == 410 and exc.value.reason.startswith("Expired: too old resource version: " + old_rv)
    before = _settled_watch_requests(fake_kube)
    with pytest.raises(ApiException) as exc:  # without: one reconnect with the same RV, then raise
        list(watch.Watch().stream(custom.list_namespaced_custom_object, *IST, resource_version=old_rv, _request_timeout=10))
    assert exc.value.status == 410
    assert _settled_watch_requests(fake_kube) - before == 2
    code, raw = fake_kube.request("GET", "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
                                  query={"watch": "true", "resourceVersion": old_rv})
    lines = list(fake_kube.api.handle(  # the raw stream: HTTP 200, one ERROR event, then the end
        "GET", "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
        f"watch=1&resourceVersion={old_rv}", {}, b"").stream.lines())
    assert code == 200 and len(lines) == 1
    err = json.loads(lines[0])
    assert err["type"] == "ERROR" and err["object"]["code"] == 410 and err["object"]["reason"] == "Expired"


@pytest.mark.parametrize("fake_kube", [{"history_limit": 3}], indirect=True)
def test_history_window_limit(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    rv = custom.list_namespaced_custom_object(*IST)["metadata"]["resourceVersion"]
    for i in range(5):
        custom.create_namespaced_custom_object(*IST, vs(f"v{i}"))
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(custom.list_namespaced_custom_object, *IST, resource_version=rv, timeout_seconds=2))
    assert exc.value.status == 410


def test_watch_timeout_ends_cleanly(custom: client.CustomObjectsApi) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(custom.list_namespaced_custom_object, *IST, timeout_seconds=1))  # [27]
    assert events == [] and 0.9 < time.monotonic() - started < 3


# ---------------------------------------------------------------------------------------- leases


def test_lease_microtime_format(fake_kube: FakeKube, leases: client.CoordinationV1Api) -> None:  # noqa: F811
    whole_second = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)  # isoformat() drops the fraction
    with pytest.raises(ApiException) as exc:  # [28]
        leases.create_namespaced_lease("default", client.V1Lease(metadata=client.V1ObjectMeta(name="l"),
                                                                 spec=client.V1LeaseSpec(renew_time=whole_second)))
    assert exc.value.status == 400 and "parsing time" in status_of(exc.value)["message"]
    code, _ = fake_kube.request("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
                                {"metadata": {"name": "l"}, "spec": {"renewTime": "2026-05-01T14:00:00.123456+02:00"}})
    assert code == 201
    assert fake_kube.get("coordination.k8s.io/v1", "Lease", "l")["spec"]["renewTime"] == "2026-05-01T12:00:00.123456Z"
    assert "generation" not in fake_kube.get("coordination.k8s.io/v1", "Lease", "l")["metadata"]


def test_lease_takeover_race_and_renewal(leases: client.CoordinationV1Api) -> None:
    lease = leases.create_namespaced_lease("default", client.V1Lease(
        metadata=client.V1ObjectMeta(name="rollout-controller"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15, acquire_time=utc_micro(),
                                renew_time=utc_micro(), lease_transitions=0)))
    renewed = copy.deepcopy(lease)
    renewed.spec.renew_time = utc_micro()
    renewed = leases.replace_namespaced_lease("rollout-controller", "default", renewed)
    assert renewed.spec.lease_transitions == 0 and renewed.metadata.resource_version != lease.metadata.resource_version
    results: dict[str, Any] = {}

    def take_over(who: str) -> None:  # [29] both saw the same (expired) record
        mine = copy.deepcopy(renewed)
        mine.spec.holder_identity, mine.spec.acquire_time, mine.spec.renew_time = who, utc_micro(), utc_micro()
        mine.spec.lease_transitions = renewed.spec.lease_transitions + 1
        try:
            results[who] = leases.replace_namespaced_lease("rollout-controller", "default", mine).spec.holder_identity
        except ApiException as exc:
            results[who] = exc.status

    threads = [threading.Thread(target=take_over, args=(w,)) for w in ("b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values(), key=str) == sorted([409, next(v for v in results.values() if v != 409)], key=str)
    final = leases.read_namespaced_lease("rollout-controller", "default")
    assert final.spec.holder_identity in ("b", "c") and final.spec.lease_transitions == 1


# ---------------------------------------------------------------------------------------- misc API surface


def test_error_responses_use_go_reason_phrases(fake_kube: FakeKube) -> None:  # noqa: F811
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{fake_kube.url}/apis/coordination.k8s.io/v1/namespaces/default/leases", method="POST",
                                 data=b'{"metadata":{"name":"x"},"spec":{"leaseDurationSeconds":0}}',
                                 headers={"Authorization": f"Bearer {fake_kube.token}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:  # [30]
        urllib.request.urlopen(req, timeout=5)  # noqa: S310 - local URL
    assert exc.value.code == 422 and exc.value.reason == "Unprocessable Entity"
    assert exc.value.headers["Content-Type"] == "application/json"
    assert json.loads(exc.value.read())["details"]["causes"][0]["field"] == "spec.leaseDurationSeconds"


def test_events_are_served_by_both_apis(fake_kube: FakeKube) -> None:  # noqa: F811
    events_api = client.EventsV1Api(fake_kube.api_client())
    core = client.CoreV1Api(fake_kube.api_client())
    events_api.create_namespaced_event("default", client.EventsV1Event(
        metadata=client.V1ObjectMeta(generate_name="reviews."), event_time=utc_micro(), reason="WeightChanged",
        note="canary weight 25", type="Normal", action="SetWeight", reporting_controller="rollout-analyzer/controller",
        reporting_instance="pod-1", regarding=client.V1ObjectReference(kind="VirtualService", name="reviews", namespace="default")))
    items = core.list_namespaced_event("default", field_selector="involvedObject.name=reviews").items
    assert [(e.reason, e.message, e.reporting_component) for e in items] == [
        ("WeightChanged", "canary weight 25", "rollout-analyzer/controller")]
    with pytest.raises(ApiException) as exc:
        events_api.create_namespaced_event("default", client.EventsV1Event(metadata=client.V1ObjectMeta(name="bad"),
                                                                           event_time=utc_micro()))
    assert exc.value.status == 422


def test_discovery_serves_the_dynamic_client(fake_kube: FakeKube) -> None:  # noqa: F811
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(fake_kube.api_client())
    res = dyn.resources.get(api_version="networking.istio.io/v1", kind="VirtualService")
    res.create(body=vs(), namespace="default")
    assert [i.metadata.name for i in res.get(namespace="default").items] == ["reviews"]


def test_garbage_collection_of_owned_objects(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    owner = custom.create_namespaced_custom_object(*IST, vs("owner"))
    ref = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "owner", "uid": owner["metadata"]["uid"]}
    core = client.CoreV1Api(fake_kube.api_client())
    core.create_namespaced_config_map("default", {"metadata": {"name": "dep", "ownerReferences": [ref]}, "data": {"a": "b"}})
    custom.delete_namespaced_custom_object(*IST, "owner")
    assert core.list_namespaced_config_map("default").items == []


def test_separate_process(tmp_path: Path) -> None:
    with FakeKubeProcess() as proc:
        api = client.CustomObjectsApi(proc.api_client())
        rv = api.list_namespaced_custom_object(*IST)["metadata"]["resourceVersion"]
        api.create_namespaced_custom_object(*IST, vs())
        proc.expire_history()
        with pytest.raises(ApiException) as exc:
            list(watch.Watch().stream(api.list_namespaced_custom_object, *IST, resource_version=rv, timeout_seconds=2))
        assert exc.value.status == 410
        assert [e["type"] for e in proc.audit() if e["name"] == "reviews"] == ["ADDED"]


def test_namespace_lifecycle(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    core = client.CoreV1Api(fake_kube.api_client())
    ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="ml")))
    assert ns.status.phase == "Active" and ns.metadata.labels == {"kubernetes.io/metadata.name": "ml"}
    ml = ("networking.istio.io", "v1", "ml", "virtualservices")
    custom.create_namespaced_custom_object(*ml, {**vs(), "metadata": {"name": "reviews", "finalizers": ["example.com/f"]}})
    core.delete_namespace("ml")  # content with a finalizer keeps the namespace Terminating
    assert core.read_namespace("ml").status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*ml, vs("new"))
    assert exc.value.status == 403 and status_of(exc.value)["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    custom.patch_namespaced_custom_object(*ml, "reviews", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        core.read_namespace("ml")
    assert exc.value.status == 404


def test_crd_scale_subresource_and_cluster_scope(custom: client.CustomObjectsApi) -> None:
    ro = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
          "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "x"}},
                   "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", "default", "rollouts", ro)
    scale = custom.patch_namespaced_custom_object_scale("argoproj.io", "v1alpha1", "default", "rollouts", "r", {"spec": {"replicas": 6}})
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 6
    got = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", "default", "rollouts", "r")
    assert got["spec"]["replicas"] == 6 and got["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as exc:  # VirtualService has no scale subresource
        custom.get_namespaced_custom_object_scale(*IST, "r")
    assert exc.value.status == 404
    cat = {"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate", "metadata": {"name": "success"},
           "spec": {"metrics": [{"name": "m", "provider": {"prometheus": {"query": "up"}}}]}}
    created = custom.create_cluster_custom_object("argoproj.io", "v1alpha1", "clusteranalysistemplates", cat)
    assert "namespace" not in created["metadata"]


def test_test_controls(fake_kube: FakeKube, custom: client.CustomObjectsApi) -> None:  # noqa: F811
    fake_kube.inject_error("PATCH", r"/virtualservices/reviews$", code=503, reason="ServiceUnavailable")
    custom.create_namespaced_custom_object(*IST, vs())
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(*IST, "reviews", {"spec": {"hosts": ["x"]}})
    assert exc.value.status == 503
    assert custom.patch_namespaced_custom_object(*IST, "reviews", {"spec": {"hosts": ["x"]}})["spec"]["hosts"] == ["x"]
    fake_kube.add_admission_hook(istio_webhook)
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*IST, vs("neg", weights=(110, -10)))
    assert exc.value.status == 400 and "weight -10 < 0" in status_of(exc.value)["message"]
    assert [e["type"] for e in fake_kube.audit("networking.istio.io/v1", "VirtualService")] == ["ADDED", "MODIFIED"]
