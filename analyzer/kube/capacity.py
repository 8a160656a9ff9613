"""The :class:`~analyzer.ports.CapacitySource` port: how many replicas the canary has and who
decides its size.

* Workloads: Deployments (``apps/v1``). ``canary_ready`` is ``status.availableReplicas`` (ready
  for ``minReadySeconds``, what can really take traffic), ``canary_desired`` is ``spec.replicas``
  (what we, an HPA or KEDA ask for now), ``stable_replicas`` the stable's ``readyReplicas``.
* Autoscalers: an ``autoscaling/v2`` HorizontalPodAutoscaler or a KEDA ``keda.sh/v1alpha1``
  ScaledObject whose ``scaleTargetRef`` is the canary workload. KEDA drives its target through an
  HPA of its own (``keda-hpa-<name>``), so the ScaledObject is named when there is one. A cluster
  without KEDA answers 404 for scaledobjects; that means "no ScaledObject", not an error.
* ``scale_canary`` writes the ``/scale`` subresource with a JSON patch guarded by a ``test`` of the
  replica count it read: it only raises the count, and refuses a workload an autoscaler manages
  (two controllers writing one ``spec.replicas`` fight forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from analyzer.core.steps import CapacityFacts, RolloutSpec, WorkloadRef
from analyzer.kube.client import DEFAULT_TIMEOUT
from analyzer.kube.errors import CALL_ERRORS, KubeError, translate
from analyzer.kube.objects import JSON_PATCH, what

KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL = "keda.sh", "v1alpha1", "scaledobjects"
SUPPORTED_KINDS = {("apps", "Deployment")}


class CapacityError(KubeError):
    """The canary's workload cannot be read or scaled as asked; the message says why."""


class Autoscaled(CapacityError):
    """Refused to scale a workload an autoscaler manages."""


def _group(api_version: str | None) -> str:
    return api_version.rpartition("/")[0] if api_version and "/" in api_version else ""


def _targets(ref: Mapping[str, Any], workload: WorkloadRef, *, default_kind: str | None = None) -> bool:
    """Whether a ``scaleTargetRef`` names ``workload`` (KEDA defaults kind/apiVersion to
    Deployment/apps/v1; an HPA must say them)."""
    kind = ref.get("kind") or default_kind
    api_version = ref.get("apiVersion") or ("apps/v1" if default_kind else None)
    if ref.get("name") != workload.name or kind != workload.kind:
        return False
    return api_version is None or _group(api_version) == _group(workload.api_version)


class KubeCapacity:
    """Implements :class:`~analyzer.ports.CapacitySource`."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.apps: Any = client.AppsV1Api(api_client)
        self.autoscaling: Any = client.AutoscalingV2Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.timeout = timeout

    # ------------------------------------------------------------------ reading

    def _check_kind(self, workload: WorkloadRef, role: str) -> None:
        if (_group(workload.api_version), workload.kind) not in SUPPORTED_KINDS:
            raise CapacityError(f"{role}.workloadRef: kind {workload.api_version} {workload.kind} is not supported "
                                f"(supported: apps/v1 Deployment)")

    def _deployment(self, namespace: str, workload: WorkloadRef, role: str) -> Any:
        self._check_kind(workload, role)
        try:
            return self.apps.read_namespaced_deployment(workload.name, namespace, _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            err = translate(exc, f"get {role} workload {what('apps', 'deployments', namespace, workload.name)}")
            raise CapacityError(str(err), getattr(err, "code", None)) from None

    def autoscaler(self, namespace: str, workload: WorkloadRef) -> str | None:
        """``ScaledObject/<name>`` or ``HorizontalPodAutoscaler/<name>`` managing ``workload``."""
        try:
            scaled = self.custom.list_namespaced_custom_object(KEDA_GROUP, KEDA_VERSION, namespace, KEDA_PLURAL,
                                                               _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            if getattr(exc, "status", None) != 404:  # 404: KEDA is not installed
                raise translate(exc, f"list {what(KEDA_GROUP, KEDA_PLURAL, namespace)}") from None
            scaled = {}
        for so in scaled.get("items") or []:
            if _targets((so.get("spec") or {}).get("scaleTargetRef") or {}, workload, default_kind="Deployment"):
                return f"ScaledObject/{so['metadata']['name']}"
        try:
            hpas = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace, _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"list {what('autoscaling', 'horizontalpodautoscalers', namespace)}") from None
        for hpa in hpas.items or []:
            ref = hpa.spec.scale_target_ref
            if _targets({"kind": ref.kind, "name": ref.name, "apiVersion": ref.api_version}, workload):
                return f"HorizontalPodAutoscaler/{hpa.metadata.name}"
        return None

    def facts(self, namespace: str, spec: RolloutSpec) -> CapacityFacts | None:
        canary = spec.canary.workload
        if canary is None:
            return None
        dep = self._deployment(namespace, canary, "canary")
        status = dep.status
        ready = (status.available_replicas if status else None) or 0
        desired = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
        stable_ready = 0
        if spec.stable.workload is not None:
            stable = self._deployment(namespace, spec.stable.workload, "stable")
            stable_ready = (stable.status.ready_replicas if stable.status else None) or 0
        return CapacityFacts(canary_ready=int(ready), canary_desired=int(desired), stable_replicas=int(stable_ready),
                             autoscaler=self.autoscaler(namespace, canary))

    # ------------------------------------------------------------------ writing

    def scale_canary(self, namespace: str, spec: RolloutSpec, replicas: int) -> None:
        canary = spec.canary.workload
        if canary is None:
            raise CapacityError("canary.workloadRef is not set: there is no canary workload to scale")
        self._check_kind(canary, "canary")
        managed = self.autoscaler(namespace, canary)
        target = what("apps", "deployments", namespace, canary.name)
        if managed:
            raise Autoscaled(f"refusing to scale {target}: {managed} manages its replica count")
        try:
            scale = self.apps.read_namespaced_deployment_scale(canary.name, namespace, _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"get {target}/scale") from None
        stated = scale.spec.replicas if scale.spec else None
        current = stated or 0
        if current >= replicas:
            return  # never scale down: the rollout only asks for more
        # Guarded by what was read: another writer in between makes the patch fail (WriteConflict).
        # A Scale at 0 may omit the field (omitempty), so there is nothing to test then.
        ops: list[dict[str, Any]] = [] if stated is None else [{"op": "test", "path": "/spec/replicas", "value": stated}]
        ops.append({"op": "add", "path": "/spec/replicas", "value": int(replicas)})
        try:
            self.apps.patch_namespaced_deployment_scale(canary.name, namespace, ops, _content_type=JSON_PATCH,
                                                       _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"scale {target} from {current} to {replicas} replicas") from None
