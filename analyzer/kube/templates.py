"""The :class:`~analyzer.ports.TemplateSource` port: Argo AnalysisTemplates (namespaced) and
ClusterAnalysisTemplates (cluster-scoped), read as plain dicts so ``analyzer.argo`` parses them
exactly as it parses files."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from analyzer.kube.client import DEFAULT_TIMEOUT
from analyzer.kube.errors import CALL_ERRORS, translate
from analyzer.kube.objects import what

GROUP = "argoproj.io"
VERSION = "v1alpha1"


class KubeTemplates:
    """Implements :class:`~analyzer.ports.TemplateSource`."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.api: Any = client.CustomObjectsApi(api_client)
        self.timeout = timeout

    def get(self, namespace: str, name: str, cluster_scope: bool = False) -> dict[str, Any] | None:
        try:
            if cluster_scope:
                obj: dict[str, Any] = self.api.get_cluster_custom_object(
                    GROUP, VERSION, "clusteranalysistemplates", name, _request_timeout=self.timeout)
            else:
                obj = self.api.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "analysistemplates", name, _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            if getattr(exc, "status", None) == 404:
                return None
            plural = "clusteranalysistemplates" if cluster_scope else "analysistemplates"
            raise translate(exc, f"get {what(GROUP, plural, None if cluster_scope else namespace, name)}") from None
        return obj
