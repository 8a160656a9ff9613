"""The :class:`~analyzer.ports.CustomObjects` port over ``CustomObjectsApi``: what the Istio and
KServe routers read and JSON-patch.

A JSON patch goes out as ``application/json-patch+json`` (the client would label a list body as a
merge patch otherwise, which the server rejects). Lost races come back as
:class:`~analyzer.ports.WriteConflict`: 409 for a stale ``resourceVersion``, and the 422 with the
generic message that the API server answers for any failed patch operation, a failed ``test``
included (kube-api-semantics.md §3.4). A 422 with causes is schema validation: a real error.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from analyzer.kube.client import DEFAULT_TIMEOUT
from analyzer.kube.errors import CALL_ERRORS, translate

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def what(group: str, plural: str, namespace: str | None, name: str = "") -> str:
    """``virtualservices.networking.istio.io ml/inference-routing``, as the API server names things."""
    resource = f"{plural}.{group}" if group else plural
    where = "/".join(p for p in (namespace, name) if p)
    return f"{resource} {where}".rstrip()


class KubeObjects:
    """Implements :class:`~analyzer.ports.CustomObjects`."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.api: Any = client.CustomObjectsApi(api_client)
        self.timeout = timeout

    def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.api.get_namespaced_custom_object(group, version, namespace, plural, name,
                                                                       _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise translate(exc, f"get {what(group, plural, namespace, name)}") from None
        return obj

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.api.patch_namespaced_custom_object(
                group, version, namespace, plural, name, ops, _content_type=JSON_PATCH,
                _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"patch {what(group, plural, namespace, name)}") from None
        return obj
