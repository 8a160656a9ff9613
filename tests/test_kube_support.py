"""Shared pieces of the tests/test_kube_*.py files (no tests here): paths, a ModelRollout, a
Deployment, the fake API server with our CRD registered, and the request log -> RBAC triple map."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "deploy" / "crd" / "modelrollout.yaml"
SEEDS = REPO / "tests" / "data" / "seed-manifests"
MR = ("rollouts.analyzer.dev/v1alpha1", "ModelRollout")

ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
    "metadata": {"name": "inference", "namespace": "default"},
    "spec": {
        "stable": {"host": "inference-v1", "workloadRef": {"kind": "Deployment", "name": "inference-v1"}},
        "canary": {"host": "inference-v2", "workloadRef": {"kind": "Deployment", "name": "inference-v2"}},
        "trafficRouting": {"istio": {"virtualServices": [{"name": "inference-routing"}]}},
        "steps": [{"setWeight": 5}, {"pause": {"duration": "10m"}}, {"setWeight": 50}],
    },
}


def rollout(name: str = "inference", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(ROLLOUT)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"].update(spec)
    return doc


def deployment(name: str, replicas: int = 1, namespace: str = "default") -> dict[str, Any]:
    labels = {"app": "inference", "version": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "model", "image": "model:1"}]}}}}


def with_crd(fake_kube: Any) -> Any:
    fake_kube.register_crd(CRD)
    return fake_kube


_PATH = re.compile(r"^/(?:api/(?P<cv>[^/]+)|apis/(?P<group>[^/]+)/(?P<gv>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")
_VERB = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def access_triple(method: str, path: str, query: str | dict[str, Any] | None) -> tuple[str, str, str] | None:
    """(group, resource[/subresource], verb) as RBAC sees one request; None for non-resource URLs."""
    m = _PATH.match(path)
    if not m:
        return None
    group = m["group"] or ""
    resource = m["plural"] + (f"/{m['sub']}" if m["sub"] else "")
    if method == "GET":
        q = query if isinstance(query, str) else "&".join(f"{k}={v}" for k, v in (query or {}).items())
        verb = "watch" if re.search(r"(^|&)watch=(true|1)", q) else ("get" if m["name"] else "list")
    else:
        verb = _VERB[method]
    return group, resource, verb


def observed_access(fake_kube: Any) -> set[tuple[str, str, str]]:
    out = set()
    for r in settled_requests(fake_kube):
        t = access_triple(r["method"], r["path"], r["query"])
        if t is not None:
            out.add(t)
    return out


def settled_requests(fake_kube: Any, quiet: float = 0.15, limit: float = 3.0) -> list[dict[str, Any]]:
    """The fake's request log once it stops growing: the server logs a request after sending its
    response, so the client can be a moment ahead of the log."""
    import time

    deadline = time.monotonic() + limit
    seen = len(fake_kube.requests)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = len(fake_kube.requests)
        if now == seen:
            break
        seen = now
    return list(fake_kube.requests)
