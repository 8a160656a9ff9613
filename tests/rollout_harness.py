"""Drive ModelRollouts through the real reconcile against the fake API server and a real
Prometheus, on a virtual clock (the backfilled hour of tests/prom_fixtures.py).

Everything here is real code of the product (kube adapter over the real ``kubernetes`` client,
Istio/KServe routers, analysis runs against Prometheus) except the clock, which jumps to each
requeue time instead of sleeping, so a 40-minute rollout runs in seconds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from analyzer.controller.providers import default_providers
from analyzer.controller.reconcile import Controller, PassResult, reconcile
from analyzer.controller.routing import kube_routers
from analyzer.kube.objects import KubeObjects
from analyzer.kube.rollouts import KubeRolloutStore
from analyzer.kube.templates import KubeTemplates

ROOT = Path(__file__).resolve().parent.parent
MODELROLLOUT_CRD = ROOT / "deploy" / "crd" / "modelrollout.yaml"
SEED = Path(__file__).resolve().parent / "data" / "seed-manifests"
VS_API = "networking.istio.io/v1beta1"
MR_API = "rollouts.analyzer.dev/v1alpha1"


class VirtualClock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def success_rate_template(name: str, address: str, *, count: int = 3, interval: str = "1m",
                          threshold: float = 0.98) -> dict[str, Any]:
    """The seed's success-rate check, made to end after ``count`` measurements, on the demo
    workload's metrics (inference_success_total / inference_requests_total by version)."""
    sel = '{version="{{args.version}}"}'
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": name},
        "spec": {"args": [{"name": "version"}], "metrics": [{
            "name": "success-rate", "interval": interval, "count": count,
            "successCondition": f"result[0] >= {threshold}", "failureCondition": f"result[0] < {threshold}",
            "provider": {"prometheus": {"address": address, "query": (
                f"sum(increase(inference_success_total{sel}[5m])) / sum(increase(inference_requests_total{sel}[5m]))")}},
        }]},
    }


def seed_virtual_services() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((SEED / "06-istio-traffic-split.yaml").read_text()) if d]


def seed_steps(versions: tuple[str, str] = ("stable", "stable")) -> list[dict[str, Any]]:
    """The seed's nine steps (05-argo-rollout-canary.yaml); each analysis judges the series of
    the given ``version`` label in the backfilled data."""
    doc = next(d for d in yaml.safe_load_all((SEED / "05-argo-rollout-canary.yaml").read_text()) if d["kind"] == "Rollout")
    steps = copy.deepcopy(doc["spec"]["strategy"]["canary"]["steps"])
    analyses = [s for s in steps if "analysis" in s]
    for s, version in zip(analyses, versions, strict=True):
        s["analysis"]["args"] = [{"name": "version", "value": version}]
    return steps


def model_rollout(name: str, steps: list[dict[str, Any]], *, routing: Mapping[str, Any] | None = None,
                  **spec: Any) -> dict[str, Any]:
    return {"apiVersion": MR_API, "kind": "ModelRollout", "metadata": {"name": name, "namespace": "default"},
            "spec": {"stable": {"host": "inference-v1"}, "canary": {"host": "inference-v2"},
                     "trafficRouting": dict(routing or {"istio": {"virtualServices": [{"name": "inference-routing"}]}}),
                     "steps": steps, **spec}}


@dataclass
class Harness:
    kube: Any  # FakeKube
    prometheus_url: str
    clock: VirtualClock
    objects: Any = None
    store: KubeRolloutStore = field(init=False)
    ctl: Controller = field(init=False)
    passes: list[PassResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        api = self.kube.api_client()
        self.objects = self.objects or KubeObjects(api)
        self.store = KubeRolloutStore(api)
        self.ctl = Controller(store=self.store, router_for=kube_routers(self.objects),
                              providers=default_providers(self.prometheus_url), templates=KubeTemplates(api),
                              clock=self.clock)

    def status(self, name: str) -> dict[str, Any]:
        obj = self.store.get("default", name)
        assert obj is not None
        return dict(obj.get("status") or {})

    def vs(self, name: str = "inference-routing") -> dict[str, Any]:
        obj = self.kube.get(VS_API, "VirtualService", name)
        assert obj is not None
        return dict(obj)

    async def run(self, name: str, until: Callable[[dict[str, Any]], bool], *, max_passes: int = 400,
                  between: Callable[[], None] | None = None) -> dict[str, Any]:
        """Reconcile, jump the clock to the requeue time, repeat until ``until(status)``."""
        for _ in range(max_passes):
            result = await reconcile(self.ctl, "default", name)
            self.passes.append(result)
            st = self.status(name)
            if until(st):
                return st
            if between is not None:
                between()
            await self.clock.sleep(result.requeue_after if result.requeue_after is not None else 30.0)
        raise AssertionError(f"{name} did not get there in {max_passes} passes: {self.status(name)}")


def canary_weight(vs: Mapping[str, Any], host: str = "inference-v2") -> int | None:
    """The canary weight of the weighted route (the route with both destinations)."""
    for route in vs["spec"].get("http", []):
        dests = route.get("route", [])
        if len(dests) == 2 and any(d["destination"]["host"] == host for d in dests):
            return next(int(d.get("weight", 0)) for d in dests if d["destination"]["host"] == host)
    return None


def vs_weights_written(kube: Any, name: str = "inference-routing") -> list[int | None]:
    """Canary weight of every stored version of the VirtualService, oldest first."""
    return [canary_weight(e["object"]) for e in kube.audit(VS_API, "VirtualService", name)]


def at_time(epoch: int, offset: float) -> datetime:
    from datetime import UTC
    return datetime.fromtimestamp(epoch + offset, UTC)
