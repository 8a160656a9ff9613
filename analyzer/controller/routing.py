"""Which traffic router drives a rollout: chosen from its ``trafficRouting`` block."""

from __future__ import annotations

from collections.abc import Callable

from analyzer.core.steps import RolloutSpec
from analyzer.ports import CustomObjects, RouterError, TrafficRouter
from analyzer.routers.haproxy import HAProxyTrafficRouter
from analyzer.routers.istio import IstioRouter
from analyzer.routers.kserve import KServeRouter

RouterFactory = Callable[[RolloutSpec, str], TrafficRouter]


def routers(objects: CustomObjects | None = None) -> RouterFactory:
    """Istio VirtualServices and KServe InferenceServices through the Kubernetes API (when
    ``objects`` is given), HAProxy through its runtime socket (always)."""

    def router_for(spec: RolloutSpec, namespace: str) -> TrafficRouter:
        traffic = spec.traffic
        if traffic.haproxy is not None:
            return HAProxyTrafficRouter(traffic.haproxy)
        if objects is not None and traffic.istio is not None:
            return IstioRouter(objects, traffic.istio, spec.stable, spec.canary, namespace)
        if objects is not None and traffic.kserve is not None:
            return KServeRouter(objects, traffic.kserve, namespace)
        kinds = "istio, kserve or haproxy" if objects is not None else "haproxy (no Kubernetes API here)"
        raise RouterError(f"rollout {namespace}/{spec.name} has no trafficRouting this controller drives ({kinds})")

    return router_for


def kube_routers(objects: CustomObjects) -> RouterFactory:
    return routers(objects)
