"""Scripted rollouts for the daemon tests: Istio VirtualServices (copies of the seed's), an
AnalysisTemplate on the ``web`` provider against a real local HTTP server that answers a scripted
health value per rollout, and ModelRollouts with short pauses and one analysis step."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODELROLLOUT_CRD = ROOT / "deploy" / "crd" / "modelrollout.yaml"
SEED_VS = Path(__file__).resolve().parent / "data" / "seed-manifests" / "06-istio-traffic-split.yaml"
VS_API = "networking.istio.io/v1beta1"
MR_GROUP, MR_VERSION, MR_PLURAL = "rollouts.analyzer.dev", "v1alpha1", "modelrollouts"
PLAN_WEIGHTS = {10, 0, 5, 25, 50, 100}  # the seed's 10, the steps' weights, 100 promoted, 0 rolled back
TEMPLATE = "health"
MEASUREMENTS = 3  # the template's count: a successful run has at least this many


class HealthServer:
    """``GET /health/<rollout>`` -> ``{"value": v}``; ``values`` is the script (default 1.0)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                name = self.path.rsplit("/", 1)[-1]
                outer.hits[name] = outer.hits.get(name, 0) + 1
                body = json.dumps({"value": outer.values.get(name, 1.0)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def health() -> Iterator[HealthServer]:
    """A HealthServer for the test, closed afterwards (a fixture: conftest.py re-exports it)."""
    server = HealthServer()
    try:
        yield server
    finally:
        server.close()


def virtual_service(name: str) -> dict[str, Any]:
    seed = next(d for d in yaml.safe_load_all(SEED_VS.read_text()) if d and d["metadata"]["name"] == "inference-routing")
    vs = copy.deepcopy(seed)
    vs["metadata"] = {"name": name, "namespace": "default"}
    return vs


def template(url: str, *, interval: str = "2s", count: int = MEASUREMENTS) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": TEMPLATE, "namespace": "default"},
            "spec": {"args": [{"name": "rollout"}], "metrics": [{
                "name": "health", "interval": interval, "count": count,
                "successCondition": "result >= 0.9", "failureCondition": "result < 0.9",
                "provider": {"web": {"url": url + "/health/{{args.rollout}}", "jsonPath": "{$.value}"}}}]}}


def steps(pause: str = "1s") -> list[dict[str, Any]]:
    return [{"setWeight": 5}, {"pause": {"duration": pause}}, {"setWeight": 25},
            {"analysis": {"templates": [{"templateName": TEMPLATE}], "args": [{"name": "rollout", "value": "{{name}}"}]}},
            {"setWeight": 50}, {"pause": {"duration": pause}}]


def rollout(name: str, *, pause: str = "1s") -> dict[str, Any]:
    body = steps(pause)
    for s in body:
        if "analysis" in s:
            s["analysis"]["args"] = [{"name": "rollout", "value": name}]
    return {"apiVersion": f"{MR_GROUP}/{MR_VERSION}", "kind": "ModelRollout",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"stable": {"host": "inference-v1"}, "canary": {"host": "inference-v2"},
                     "trafficRouting": {"istio": {"virtualServices": [{"name": f"vs-{name}"}]}},
                     "steps": body}}


def create_all(api: Any, names: list[str], health_url: str, *, interval: str = "2s", with_template: bool = True) -> None:
    """VirtualService, template (once) and ModelRollout for each name, through the real client."""
    from kubernetes import client

    co = client.CustomObjectsApi(api)
    if with_template:
        co.create_namespaced_custom_object("argoproj.io", "v1alpha1", "default", "analysistemplates",
                                           template(health_url, interval=interval))
    for name in names:
        co.create_namespaced_custom_object("networking.istio.io", "v1beta1", "default", "virtualservices",
                                           virtual_service(f"vs-{name}"))
        co.create_namespaced_custom_object(MR_GROUP, MR_VERSION, "default", MR_PLURAL, rollout(name))


def get_rollout(api: Any, name: str) -> dict[str, Any]:
    from kubernetes import client

    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        MR_GROUP, MR_VERSION, "default", MR_PLURAL, name)
    return obj


def canary_weight(vs: dict[str, Any], host: str = "inference-v2") -> int | None:
    for route in vs["spec"].get("http", []):
        dests = route.get("route", [])
        if len(dests) == 2 and any(d["destination"]["host"] == host for d in dests):
            return next(int(d.get("weight", 0)) for d in dests if d["destination"]["host"] == host)
    return None


def finished(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Healthy", "Degraded")
