"""deploy/: every manifest is well-formed, the Deployment and Service are accepted by the API
server (the fake's validation and defaulting), and the RBAC grants exactly the API calls the code
in analyzer/kube makes: the rules equal the table in analyzer/kube/__init__.py, and the adapters,
driven through every method against the fake, send nothing outside it and use all of it."""

from __future__ import annotations

from typing import Any

import yaml
from test_kube_support import CRD, REPO, SEEDS, deployment, observed_access, rollout, with_crd

from analyzer.core.steps import (
    Destination,
    IstioRouting,
    KServeRouting,
    RolloutSpec,
    TrafficState,
    VirtualServiceRef,
    WorkloadRef,
)
from analyzer.kube import API_ACCESS, LEASE_ACCESS
from analyzer.kube.capacity import KubeCapacity
from analyzer.kube.events import KubeEvents
from analyzer.kube.lease import LeaderElector
from analyzer.kube.objects import KubeObjects
from analyzer.kube.rollouts import KubeRolloutStore
from analyzer.kube.templates import KubeTemplates
from analyzer.routers.istio import IstioRouter
from analyzer.routers.kserve import KServeRouter

DEPLOY = REPO / "deploy"
NAMESPACE = "rollout-analyzer"
SA = "rollout-analyzer"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def by_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in items if d["kind"] == kind]


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"{role['metadata']['name']}: no resourceNames or URLs"
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    assert "*" not in (g, r, v), f"{role['metadata']['name']}: wildcard in {rule}"
                    out.add((g, r, v))
    return out


def test_every_manifest_is_well_formed():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {"crd/modelrollout.yaml", "rbac.yaml", "deployment.yaml", "service.yaml"}
    for f in files:
        for d in yaml.safe_load_all(f.read_text()):
            if d is None:
                continue
            assert isinstance(d, dict), f"{f}: every document is a mapping"
            assert d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"), f"{f}: apiVersion, kind, metadata.name"
            labels = d["metadata"].get("labels") or {}
            if f.name != "modelrollout.yaml":
                assert labels.get("app.kubernetes.io/name") == "rollout-analyzer", f"{f}: {d['kind']} labelled"


def test_rbac_grants_exactly_the_table():
    rbac = docs("rbac.yaml")
    assert [d["kind"] for d in rbac] == ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    (sa,) = by_kind(rbac, "ServiceAccount")
    assert (sa["metadata"]["name"], sa["metadata"]["namespace"]) == (SA, NAMESPACE)
    (cluster_role,) = by_kind(rbac, "ClusterRole")
    (role,) = by_kind(rbac, "Role")
    assert rules_of(cluster_role) == API_ACCESS
    assert rules_of(role) == LEASE_ACCESS and role["metadata"]["namespace"] == NAMESPACE
    for binding, target in ((by_kind(rbac, "ClusterRoleBinding")[0], cluster_role), (by_kind(rbac, "RoleBinding")[0], role)):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": target["kind"], "name": target["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}]
        if binding["kind"] == "RoleBinding":
            assert binding["metadata"]["namespace"] == NAMESPACE
    # nothing that reads secrets, runs pods or grants RBAC
    granted = {r for _, r, _ in API_ACCESS | LEASE_ACCESS}
    assert not granted & {"secrets", "pods", "pods/exec", "roles", "clusterroles", "rolebindings", "configmaps"}


def test_the_adapters_use_exactly_what_rbac_grants(fake_kube):
    """Drive every adapter method (and the routers through them) and map each HTTP request to
    (group, resource, verb): the set must equal the table."""
    with_crd(fake_kube)
    fake_kube.create_namespace(NAMESPACE)
    for vs in [d for d in yaml.safe_load_all((SEEDS / "06-istio-traffic-split.yaml").read_text()) if d]:
        fake_kube.create(vs)
    fake_kube.load_manifests(SEEDS / "04-kserve-canary.yaml")
    isvc = fake_kube.list_objects("serving.kserve.io/v1beta1", "InferenceService", "default")[0]["metadata"]["name"]
    fake_kube.create(yaml.safe_load((REPO / "templates" / "success-rate.yaml").read_text()), namespace="default")
    fake_kube.create(deployment("inference-v1", 2))
    fake_kube.create(deployment("inference-v2", 1))
    fake_kube.create(rollout())
    api = fake_kube.api_client()

    objects = KubeObjects(api)
    stable, canary = Destination("inference-v1", workload=WorkloadRef("Deployment", "inference-v1")), \
        Destination("inference-v2", workload=WorkloadRef("Deployment", "inference-v2"))
    IstioRouter(objects, IstioRouting((VirtualServiceRef("inference-routing"),)), stable, canary, "default").apply(TrafficState(5))
    KServeRouter(objects, KServeRouting(isvc), "default").apply(TrafficState(25))

    store = KubeRolloutStore(api)
    obj = store.get("default", "inference")
    store.update_status("default", "inference", {"phase": "Progressing"}, obj["metadata"]["resourceVersion"])
    store.patch_spec("default", "inference", {"paused": True})
    store.list()
    _, rv = store.list_with_version("default")
    store.patch_spec("default", "inference", {"paused": False})
    next(e for e in store.watch("default", rv, timeout_seconds=2) if e[0] != "BOOKMARK")

    KubeTemplates(api).get("default", "success-rate")
    KubeTemplates(api).get("default", "shared", cluster_scope=True)

    cap = KubeCapacity(api)
    spec = RolloutSpec(name="inference", stable=stable, canary=canary)
    cap.facts("default", spec)
    cap.scale_canary("default", spec, 2)

    events = KubeEvents(api)
    events.emit(obj, "StepCompleted", "step 0 completed")
    events.emit(obj, "StepCompleted", "step 0 completed")

    elector = LeaderElector(api, NAMESPACE, "rollout-analyzer", "pod-a")
    assert elector.try_acquire_or_renew() and elector.try_acquire_or_renew()

    used = observed_access(fake_kube)
    assert used - (API_ACCESS | LEASE_ACCESS) == set(), "requests outside deploy/rbac.yaml"
    assert (API_ACCESS | LEASE_ACCESS) - used == set(), "rules in deploy/rbac.yaml that no code uses"
    assert {r for r in used if r[0] == "coordination.k8s.io"} == LEASE_ACCESS
    assert all(r["path"].startswith(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/") for r in fake_kube.requests
               if "/leases" in r["path"])


def test_deployment_and_service_are_accepted_and_agree(fake_kube):
    fake_kube.create_namespace(NAMESPACE)
    (dep,) = docs("deployment.yaml")
    (svc,) = docs("service.yaml")
    created = fake_kube.create(dep)
    assert created["spec"]["replicas"] == 2
    pod = created["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"][:2] == ["run", "--leader-elect"] and c["args"][c["args"].index("--namespace") + 1] == "all"
    assert c["image"] == "rollout-analyzer:0.1.0"
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {c["livenessProbe"]["httpGet"]["port"], c["readinessProbe"]["httpGet"]["port"]} == {"http"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert "USER 10001" in (REPO / "Dockerfile").read_text()  # the image's own user agrees
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == SA
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])

    created_svc = fake_kube.create(svc)
    assert created_svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    labels = created["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in created_svc["spec"]["selector"].items())
    assert created["spec"]["selector"]["matchLabels"] == created_svc["spec"]["selector"]
    # the same options the daemon really has
    from analyzer.controller.daemon_cli import run

    options = {o for p in run.params for o in p.opts + p.secondary_opts}
    assert {"--leader-elect", "--namespace", "--listen"} <= options


def test_our_crd_is_served(fake_kube):
    fake_kube.register_crd(CRD)
    assert fake_kube.validate(rollout()) == []
