"""Issue 4's scenarios: whole rollouts through the real reconcile, the real kube adapter (over
the real ``kubernetes`` client, against the fake API server in tests/fakekube) and analyses
against a real Prometheus holding the backfilled hour of tests/prom_fixtures.py
(version "stable": 1 % errors, "canary": 5 % errors, "idle": no traffic)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prom_fixtures import EPOCH
from rollout_harness import (
    MODELROLLOUT_CRD,
    MR_API,
    VS_API,
    Harness,
    VirtualClock,
    at_time,
    canary_weight,
    model_rollout,
    seed_steps,
    seed_virtual_services,
    success_rate_template,
    vs_weights_written,
)
from test_kserve_router import NAME as ISVC
from test_kserve_router import knative_status, seed_isvc

from analyzer.controller.actions import request
from analyzer.kube.objects import KubeObjects
from analyzer.localprom import free_port

pytestmark = pytest.mark.usefixtures("require_prometheus")


def done(st: dict[str, Any]) -> bool:
    return st.get("phase") in ("Healthy", "Degraded")


def setup(fake_kube: Any, prom_url: str, *, templates: list[dict[str, Any]] | None = None,
          objects: Any = None) -> Harness:
    fake_kube.register_crd(MODELROLLOUT_CRD)
    for vs in seed_virtual_services():
        fake_kube.create(vs)
    if templates is None:
        templates = [success_rate_template("success-rate", prom_url), success_rate_template("latency-check", prom_url)]
    for t in templates:
        fake_kube.create(t)
    return Harness(fake_kube, prom_url, VirtualClock(at_time(EPOCH, 300)), objects=objects)


def test_seed_steps_on_seed_virtualservices_promote_healthy_canary(fake_kube: Any, backfilled_prometheus: Any) -> None:
    h = setup(fake_kube, backfilled_prometheus.url)
    before = {vs["metadata"]["name"]: vs for vs in (h.vs("inference-routing"), h.vs("ab-testing"))}
    fake_kube.create(model_rollout("inference", seed_steps(("stable", "stable"))))

    st = asyncio.run(h.run("inference", done))

    assert st["phase"] == "Healthy", st["message"]
    assert st["weights"]["verified"] == 100
    # Every weight ever written is one of the plan's, in order: 10 (seed) -> 5 -> 25 -> 50 -> 100.
    written = [w for i, w in enumerate(vs_weights_written(fake_kube)) if i == 0 or w != vs_weights_written(fake_kube)[i - 1]]
    assert written == [10, 5, 25, 50, 100]
    after = h.vs("inference-routing")
    # The header-pinned route (x-model-version: v2) is exactly as it was; the A/B VirtualService untouched.
    assert after["spec"]["http"][0] == before["inference-routing"]["spec"]["http"][0]
    assert h.vs("ab-testing")["metadata"]["resourceVersion"] == before["ab-testing"]["metadata"]["resourceVersion"]
    runs = {r["stepIndex"]: r for r in st["analysisRuns"]}
    assert runs[2]["phase"] == runs[5]["phase"] == "Successful"
    assert runs[2]["status"]["metricResults"][0]["count"] == 3
    assert st["observedGeneration"] == fake_kube.get(MR_API, "ModelRollout", "inference")["metadata"]["generation"]


def test_failing_analysis_rolls_back_within_one_reconcile(fake_kube: Any, backfilled_prometheus: Any) -> None:
    h = setup(fake_kube, backfilled_prometheus.url)
    fake_kube.create(model_rollout("inference", seed_steps(("canary", "stable"))))

    def failed_run(st: dict[str, Any]) -> bool:
        return any(r["phase"] == "Failed" for r in st.get("analysisRuns", []))

    st = asyncio.run(h.run("inference", failed_run))
    # The pass that saw the failing measurement also put all traffic back on stable.
    assert st["phase"] == "Degraded"
    assert "success-rate" in st["message"] and "Failed" in st["message"]
    assert st["weights"] == {**st["weights"], "desired": 0, "verified": 0}
    assert canary_weight(h.vs()) == 0
    assert h.vs()["spec"]["http"][0]["route"][0]["destination"]["host"] == "inference-v2"  # header route kept
    assert max(w or 0 for w in vs_weights_written(fake_kube)) == 10  # never beyond the seed's 10 / step's 5


def test_inconclusive_pauses_until_a_person_promotes(fake_kube: Any, backfilled_prometheus: Any) -> None:
    h = setup(fake_kube, backfilled_prometheus.url)
    fake_kube.create(model_rollout("inference", seed_steps(("idle", "stable"))))

    st = asyncio.run(h.run("inference", lambda s: s.get("phase") == "Paused" and any(
        p["reason"] == "InconclusiveAnalysisRun" for p in s.get("pauseConditions", []))))
    assert canary_weight(h.vs()) == 5  # held where it was
    # A paused rollout stays paused: more passes change nothing.
    for _ in range(3):
        st = asyncio.run(h.run("inference", lambda s: True))
    assert st["phase"] == "Paused" and st["currentStepIndex"] == 2

    request(h.store, "default", "inference", "promote", actor="test")
    st = asyncio.run(h.run("inference", done))
    assert st["phase"] == "Healthy"
    assert canary_weight(h.vs()) == 100


def test_prometheus_down_errors_and_aborts(fake_kube: Any, backfilled_prometheus: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    h = setup(fake_kube, backfilled_prometheus.url,
              templates=[success_rate_template("success-rate", dead), success_rate_template("latency-check", dead)])
    fake_kube.create(model_rollout("inference", seed_steps(("stable", "stable"))))

    st = asyncio.run(h.run("inference", done))
    assert st["phase"] == "Degraded"
    run = next(r for r in st["analysisRuns"] if r["stepIndex"] == 2)
    assert run["phase"] == "Error"
    # Argo's default consecutiveErrorLimit is 4: the fifth consecutive error ends the run.
    assert run["status"]["metricResults"][0]["consecutiveError"] == 5
    assert canary_weight(h.vs()) == 0


class RacingObjects(KubeObjects):
    """The real adapter, with another writer editing the VirtualService between our read and our
    write (once): the moment a blind write would clobber their change."""

    def __init__(self, api_client: Any, kube: Any) -> None:
        super().__init__(api_client)
        self.kube = kube
        self.raced = 0

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        if self.raced == 0 and name == "inference-routing" and any(o["op"] == "replace" for o in ops):
            self.raced += 1

            def add_retries(vs: dict[str, Any]) -> None:
                vs["spec"]["http"][1]["retries"] = {"attempts": 3, "perTryTimeout": "2s"}
                vs["spec"]["http"][1]["route"][0]["weight"] = 60
                vs["spec"]["http"][1]["route"][1]["weight"] = 40

            self.kube.simulate_other_writer(VS_API, "VirtualService", name, add_retries)
        return super().json_patch(group, version, plural, namespace, name, ops)


def test_another_writer_mid_step_is_not_clobbered(fake_kube: Any, backfilled_prometheus: Any) -> None:
    objects = RacingObjects(fake_kube.api_client(), fake_kube)
    h = setup(fake_kube, backfilled_prometheus.url, objects=objects)
    fake_kube.create(model_rollout("inference", seed_steps(("stable", "stable"))))

    st = asyncio.run(h.run("inference", lambda s: s.get("weights", {}).get("verified") == 5))
    assert objects.raced == 1
    vs = h.vs()
    # Our patch's `test` failed against their write; we read again and recomputed: their retry
    # policy survives, and the weights are the step's, not theirs.
    assert vs["spec"]["http"][1]["retries"] == {"attempts": 3, "perTryTimeout": "2s"}
    assert canary_weight(vs) == 5
    assert st["trafficProblems"] == []
    # Someone edits the weights by hand between passes: the next pass puts the step's weight back.
    fake_kube.simulate_other_writer(VS_API, "VirtualService", "inference-routing",
                                    lambda v: v["spec"]["http"][1]["route"][1].update(weight=50) or
                                    v["spec"]["http"][1]["route"][0].update(weight=50))
    st = asyncio.run(h.run("inference", lambda s: True))
    assert canary_weight(h.vs()) == 5


def test_kserve_router_through_a_whole_rollout(fake_kube: Any, backfilled_prometheus: Any) -> None:
    fake_kube.register_crd(MODELROLLOUT_CRD)
    fake_kube.create(seed_isvc())
    fake_kube.create(success_rate_template("success-rate", backfilled_prometheus.url))
    h = Harness(fake_kube, backfilled_prometheus.url, VirtualClock(at_time(EPOCH, 300)))
    steps = [{"setWeight": 10}, {"pause": {"duration": "2m"}},
             {"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "version", "value": "stable"}]}},
             {"setWeight": 50}, {"pause": {"duration": "2m"}}]
    fake_kube.create(model_rollout("model", steps, routing={"kserve": {"inferenceService": ISVC}}))
    percents: list[Any] = []

    def kserve_controller() -> None:
        obj = fake_kube.get("serving.kserve.io/v1beta1", "InferenceService", ISVC)
        percents.append(obj["spec"]["predictor"].get("canaryTrafficPercent"))
        fake_kube.set_status("serving.kserve.io/v1beta1", "InferenceService", ISVC, knative_status(obj, obj.get("status")))

    kserve_controller()
    st = asyncio.run(h.run("model", done, between=kserve_controller))
    assert st["phase"] == "Healthy", st["message"]
    final = fake_kube.get("serving.kserve.io/v1beta1", "InferenceService", ISVC)
    assert "canaryTrafficPercent" not in final["spec"]["predictor"]  # promotion removes it
    seen = [p for i, p in enumerate(percents) if i == 0 or p != percents[i - 1]]
    # The seed's 10, then each step's share, then 100; then canaryTrafficPercent is removed (above).
    assert seen[-3:] == [10, 50, 100]


def test_capacity_gate_holds_the_weight_until_the_canary_has_replicas(fake_kube: Any, backfilled_prometheus: Any) -> None:
    """Stable has 10 ready replicas; 25 % of the traffic needs ceil(10 x 0.25) = 3 ready canary
    replicas. The weight stays at 5 % (which needs 1) until the canary's Deployment reports 3."""
    from test_kube_support import deployment

    from analyzer.kube.capacity import KubeCapacity

    h = setup(fake_kube, backfilled_prometheus.url)
    h.ctl.capacity = KubeCapacity(fake_kube.api_client())
    fake_kube.create(deployment("inference-v1", replicas=10))
    fake_kube.create(deployment("inference-v2", replicas=1))
    fake_kube.set_deployment_ready("inference-v1", ready=10)
    fake_kube.set_deployment_ready("inference-v2", ready=1)
    steps = [{"setWeight": 5}, {"pause": {"duration": "1m"}}, {"setWeight": 25}, {"pause": {"duration": "1m"}}]
    fake_kube.create(model_rollout(
        "inference", steps, capacity={"progressDeadlineSeconds": 3600},
        **{"stable": {"host": "inference-v1", "workloadRef": {"kind": "Deployment", "name": "inference-v1"}},
           "canary": {"host": "inference-v2", "workloadRef": {"kind": "Deployment", "name": "inference-v2"}}}))

    st = asyncio.run(h.run("inference", lambda s: s.get("currentStepIndex") == 2 and "capacity" in s.get("message", "")))
    assert canary_weight(h.vs()) == 5
    assert "1/3 ready replicas for weight 25" in st["message"]
    # Time passes, the gate keeps holding: the weight is never raised without the replicas.
    for _ in range(5):
        st = asyncio.run(h.run("inference", lambda s: True))
    assert canary_weight(h.vs()) == 5 and st["phase"] == "Progressing"
    # Someone (an autoscaler, a person) gives the canary 3 ready replicas: the weight moves.
    fake_kube.patch("apps/v1", "Deployment", "inference-v2", {"spec": {"replicas": 3}})
    fake_kube.set_deployment_ready("inference-v2", ready=3)
    st = asyncio.run(h.run("inference", lambda s: s.get("currentStepIndex") == 4))
    assert canary_weight(h.vs()) == 25
    # The end (100 %) needs the stable's full size, 10: held again until the canary has it.
    assert "3/10 ready replicas for weight 100" in st["message"]
    assert fake_kube.get("apps/v1", "Deployment", "inference-v2")["spec"]["replicas"] == 3  # never scaled by us
    fake_kube.patch("apps/v1", "Deployment", "inference-v2", {"spec": {"replicas": 10}})
    fake_kube.set_deployment_ready("inference-v2", ready=10)
    st = asyncio.run(h.run("inference", done))
    assert st["phase"] == "Healthy"
    assert canary_weight(h.vs()) == 100


def test_invalid_spec_is_reported_and_traffic_untouched(fake_kube: Any, backfilled_prometheus: Any) -> None:
    h = setup(fake_kube, backfilled_prometheus.url)
    doc = model_rollout("inference", seed_steps(("stable", "stable")),
                        routing={"istio": {"virtualServices": [{"name": "inference-routing"}]},
                                 "kserve": {"inferenceService": "model"}})
    fake_kube.create(doc)  # the CRD's schema cannot say "one of"; our parser does
    writes_before = len(vs_weights_written(fake_kube))
    st = asyncio.run(h.run("inference", lambda s: bool(s.get("phase"))))
    assert st["phase"] == "Degraded"
    assert st["message"].startswith("InvalidSpec: ") and "spec.trafficRouting" in st["message"]
    assert len(vs_weights_written(fake_kube)) == writes_before  # not one write to the VirtualService
    # Fixing the spec starts the rollout.
    fake_kube.patch(MR_API, "ModelRollout", "inference", {"spec": {"trafficRouting": {"kserve": None}}})
    st = asyncio.run(h.run("inference", lambda s: s.get("weights", {}).get("verified") == 5))
    assert st["phase"] in ("Progressing", "Paused")


def test_api_errors_on_the_virtualservice_hold_the_step_and_are_stated(fake_kube: Any, backfilled_prometheus: Any) -> None:
    h = setup(fake_kube, backfilled_prometheus.url)
    fake_kube.create(model_rollout("inference", seed_steps(("stable", "stable"))))
    fake_kube.inject_error(method="PATCH", path=".*/virtualservices/inference-routing$", code=500, times=3)
    seen: list[dict[str, Any]] = []
    st = asyncio.run(h.run("inference", lambda s: seen.append(s) or s.get("weights", {}).get("verified") == 5))
    troubled = [s for s in seen if s.get("trafficProblems")]
    assert troubled, "the failed writes must be visible in the status"
    assert all(s["currentStepIndex"] == 0 for s in troubled)  # the step did not complete meanwhile
    assert st["trafficProblems"] == [] and canary_weight(h.vs()) == 5


def test_missing_template_errors_the_run_and_rolls_back(fake_kube: Any, backfilled_prometheus: Any) -> None:
    h = setup(fake_kube, backfilled_prometheus.url, templates=[])
    fake_kube.create(model_rollout("inference", seed_steps(("stable", "stable"))))
    st = asyncio.run(h.run("inference", done))
    assert st["phase"] == "Degraded"
    run = next(r for r in st["analysisRuns"] if r["stepIndex"] == 2)
    assert run["phase"] == "Error" and "AnalysisTemplate 'success-rate' not found" in run["message"]
    assert canary_weight(h.vs()) == 0
