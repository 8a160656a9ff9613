"""KubeCapacity against the fake API server: replica facts from Deployments, the autoscaler that
manages the canary (the seed's HPA on DCGM GPU metrics and its KEDA ScaledObject, unchanged), and
scaling through /scale that never fights an autoscaler."""

from __future__ import annotations

import pytest
from test_kube_support import SEEDS, deployment, settled_requests

from analyzer.core.steps import CapacityFacts, Destination, RolloutSpec, WorkloadRef
from analyzer.kube.capacity import Autoscaled, CapacityError, KubeCapacity
from analyzer.ports import WriteConflict

# KEDA's CRD is not among ../shared/crds: a minimal one, enough for the API server to serve the kind.
KEDA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {"group": "keda.sh", "scope": "Namespaced",
             "names": {"kind": "ScaledObject", "listKind": "ScaledObjectList", "plural": "scaledobjects",
                       "singular": "scaledobject", "shortNames": ["so"]},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                        "required": ["scaleTargetRef"],
                                        "properties": {"scaleTargetRef": {"type": "object", "required": ["name"],
                                                                          "properties": {"name": {"type": "string"},
                                                                                         "kind": {"type": "string"},
                                                                                         "apiVersion": {"type": "string"}}}}},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
}


def spec_for(canary: str | None = "inference-v2", stable: str | None = "inference-v1", kind: str = "Deployment") -> RolloutSpec:
    return RolloutSpec(name="inference",
                       stable=Destination("inference-v1", workload=WorkloadRef(kind, stable) if stable else None),
                       canary=Destination("inference-v2", workload=WorkloadRef(kind, canary) if canary else None))


@pytest.fixture
def cap(fake_kube):
    fake_kube.create(deployment("inference-v1", replicas=4))
    fake_kube.create(deployment("inference-v2", replicas=2))
    fake_kube.set_deployment_ready("inference-v1")
    fake_kube.set_deployment_ready("inference-v2", ready=1)
    return KubeCapacity(fake_kube.api_client())


def test_facts_from_deployments_without_autoscaler(fake_kube, cap):
    assert cap.facts("default", spec_for()) == CapacityFacts(canary_ready=1, canary_desired=2, stable_replicas=4)
    fake_kube.set_deployment_ready("inference-v2")
    assert cap.facts("default", spec_for()) == CapacityFacts(2, 2, 4)
    # no status yet (nothing reported): zero ready, not an error
    fake_kube.create(deployment("fresh", replicas=3))
    assert cap.facts("default", spec_for(canary="fresh")) == CapacityFacts(0, 3, 4)
    assert cap.facts("default", spec_for(stable=None)) == CapacityFacts(2, 2, 0)
    assert cap.facts("default", spec_for(canary=None)) is None
    # without KEDA installed the scaledobjects list is a 404, which means "no ScaledObject"
    assert any(r["code"] == 404 and r["path"].endswith("/scaledobjects") for r in settled_requests(fake_kube))


def test_hpa_targeting_the_canary_is_its_autoscaler(fake_kube, cap):
    fake_kube.create(deployment("other"))
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "other-hpa"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
                    "minReplicas": 1, "maxReplicas": 3,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}
    fake_kube.create(hpa)
    assert cap.facts("default", spec_for()).autoscaler is None  # an HPA on another workload does not count
    hpa["metadata"]["name"] = "inference-v2"
    hpa["spec"]["scaleTargetRef"]["name"] = "inference-v2"
    fake_kube.create(hpa)
    assert cap.facts("default", spec_for()) == CapacityFacts(1, 2, 4, "HorizontalPodAutoscaler/inference-v2")


def test_seed_hpa_on_dcgm_gpu_metrics(fake_kube):
    fake_kube.create_namespace("ml-serving")
    fake_kube.create(deployment("triton-inference", replicas=2, namespace="ml-serving"))
    fake_kube.create(deployment("triton-stable", replicas=6, namespace="ml-serving"))
    fake_kube.set_deployment_ready("triton-stable", namespace="ml-serving")
    fake_kube.set_deployment_ready("triton-inference", namespace="ml-serving", ready=2)
    fake_kube.load_manifests(SEEDS / "01-hpa-gpu-dcgm.yaml")
    cap = KubeCapacity(fake_kube.api_client())
    spec = spec_for(canary="triton-inference", stable="triton-stable")
    assert cap.facts("ml-serving", spec) == CapacityFacts(2, 2, 6, "HorizontalPodAutoscaler/triton-gpu-hpa")
    with pytest.raises(Autoscaled, match="refusing to scale deployments.apps ml-serving/triton-inference: "
                                         "HorizontalPodAutoscaler/triton-gpu-hpa manages its replica count"):
        cap.scale_canary("ml-serving", spec, 5)
    assert fake_kube.get("apps/v1", "Deployment", "triton-inference", "ml-serving")["spec"]["replicas"] == 2
    assert not [r for r in settled_requests(fake_kube) if r["method"] != "GET"]


def test_seed_keda_scaled_object(fake_kube):
    fake_kube.register_crd(KEDA_CRD)
    fake_kube.create_namespace("ml-serving")
    fake_kube.create(deployment("triton-inference", replicas=1, namespace="ml-serving"))
    fake_kube.set_deployment_ready("triton-inference", namespace="ml-serving")
    fake_kube.load_manifests(SEEDS / "02-keda-scaledobject.yaml")  # scaleTargetRef: name only (kind defaults)
    # KEDA drives the Deployment through an HPA of its own; the ScaledObject is what a person edits
    fake_kube.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                      "metadata": {"name": "keda-hpa-inference-scaler", "namespace": "ml-serving"},
                      "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton-inference"},
                               "minReplicas": 1, "maxReplicas": 50,
                               "metrics": [{"type": "External", "external": {"metric": {"name": "s0-prometheus"},
                                                                             "target": {"type": "AverageValue", "averageValue": "70"}}}]}})
    cap = KubeCapacity(fake_kube.api_client())
    spec = spec_for(canary="triton-inference", stable=None)
    assert cap.facts("ml-serving", spec) == CapacityFacts(1, 1, 0, "ScaledObject/inference-scaler")
    with pytest.raises(Autoscaled, match="ScaledObject/inference-scaler"):
        cap.scale_canary("ml-serving", spec, 3)
    # a ScaledObject for a StatefulSet of the same name is not ours
    fake_kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", "keda-hpa-inference-scaler", "ml-serving")
    fake_kube.patch("keda.sh/v1alpha1", "ScaledObject", "inference-scaler",
                    {"spec": {"scaleTargetRef": {"kind": "StatefulSet", "apiVersion": "apps/v1"}}}, "ml-serving")
    assert cap.facts("ml-serving", spec).autoscaler is None


def test_scale_canary_through_the_scale_subresource(fake_kube, cap):
    cap.scale_canary("default", spec_for(), 3)
    dep = fake_kube.get("apps/v1", "Deployment", "inference-v2")
    assert dep["spec"]["replicas"] == 3
    writes = [r for r in settled_requests(fake_kube) if r["method"] != "GET"]
    assert [(r["method"], r["path"], r["content_type"].split(";")[0]) for r in writes] == [
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/inference-v2/scale", "application/json-patch+json")]
    # never down, and no write when already there
    cap.scale_canary("default", spec_for(), 2)
    cap.scale_canary("default", spec_for(), 3)
    assert fake_kube.get("apps/v1", "Deployment", "inference-v2")["spec"]["replicas"] == 3
    assert len([r for r in settled_requests(fake_kube) if r["method"] != "GET"]) == 1
    assert cap.facts("default", spec_for()).canary_desired == 3


def test_scale_canary_guarded_against_another_writer(fake_kube, cap):
    class Racing(KubeCapacity):  # someone rescales between our read of /scale and our patch
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            real = self.apps.read_namespaced_deployment_scale

            def read(*args, **kwargs):
                out = real(*args, **kwargs)
                fake_kube.patch("apps/v1", "Deployment", "inference-v2", {"spec": {"replicas": 5}})
                return out
            self.apps.read_namespaced_deployment_scale = read

    with pytest.raises(WriteConflict):
        Racing(fake_kube.api_client()).scale_canary("default", spec_for(), 3)
    assert fake_kube.get("apps/v1", "Deployment", "inference-v2")["spec"]["replicas"] == 5  # theirs, not ours


def test_clear_errors_for_missing_and_unsupported_workloads(fake_kube, cap):
    with pytest.raises(CapacityError, match="get canary workload deployments.apps default/nope: 404 NotFound"):
        cap.facts("default", spec_for(canary="nope"))
    with pytest.raises(CapacityError, match="get stable workload deployments.apps default/gone"):
        cap.facts("default", spec_for(stable="gone"))
    with pytest.raises(CapacityError, match="canary.workloadRef: kind apps/v1 StatefulSet is not supported"):
        cap.facts("default", spec_for(kind="StatefulSet"))
    with pytest.raises(CapacityError, match="canary.workloadRef is not set"):
        cap.scale_canary("default", spec_for(canary=None), 2)
