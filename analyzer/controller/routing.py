"""Which traffic router drives a rollout: chosen from its ``trafficRouting`` block."""

from __future__ import annotations

from collections.abc import Callable

from analyzer.core.steps import RolloutSpec
from analyzer.ports import CustomObjects, RouterError, TrafficRouter
from analyzer.routers.istio import IstioRouter
from analyzer.routers.kserve import KServeRouter

RouterFactory = Callable[[RolloutSpec, str], TrafficRouter]


def kube_routers(objects: CustomObjects) -> RouterFactory:
    """Istio VirtualServices and KServe InferenceServices through the Kubernetes API."""

    def router_for(spec: RolloutSpec, namespace: str) -> TrafficRouter:
        if spec.traffic.istio is not None:
            return IstioRouter(objects, spec.traffic.istio, spec.stable, spec.canary, namespace)
        if spec.traffic.kserve is not None:
            return KServeRouter(objects, spec.traffic.kserve, namespace)
        raise RouterError(f"rollout {namespace}/{spec.name} has no trafficRouting this controller drives "
                          "(istio or kserve)")

    return router_for
