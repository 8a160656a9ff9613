"""KServe router: canaryTrafficPercent step by step, promotion by removing it, rollback by 0, the
share read back from status.components.predictor.traffic. A small stand-in for KServe's
Knative-mode reconciler (traffic-semantics.md §5.2) writes the status the way KServe does."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_validation import INFERENCESERVICE_CRD, assert_valid
from test_istio_router import KubeCustomObjects

from analyzer.core.model import Phase
from analyzer.core.steps import (
    EnsureAnalysisRun,
    Facts,
    KServeRouting,
    RolloutStatus,
    TrafficState,
    Verdict,
    decide,
    record_traffic,
)
from analyzer.ports import WriteConflict
from analyzer.rollout.memory import MemoryObjects
from analyzer.rollout.spec import parse_rollout
from analyzer.routers import kserve
from analyzer.routers.kserve import KServeError, KServeRouter, apply_traffic, json_patch, read_traffic

SEED = Path(__file__).resolve().parent / "data" / "seed-manifests" / "04-kserve-canary.yaml"
NAME = "model-v2-canary"
REV1, REV2 = f"{NAME}-predictor-00001", f"{NAME}-predictor-00002"


def seed_isvc() -> dict[str, Any]:
    return yaml.safe_load(SEED.read_text())


def knative_status(isvc: dict[str, Any], prior: dict[str, Any] | None, *, latest_ready: str = REV2,
                   latest_created: str = REV2) -> dict[str, Any]:
    """What KServe's ksvc reconciler + status propagation report for the spec (Knative mode)."""
    comp_prior = ((prior or {}).get("components") or {}).get("predictor") or {}
    rolled = comp_prior.get("latestRolledoutRevision", REV1)
    previous = comp_prior.get("previousRolledoutRevision", "")
    pct = isvc["spec"]["predictor"].get("canaryTrafficPercent")
    if pct is not None and pct < 100 and rolled == latest_ready and previous:
        # rollback after a promotion: this reconcile still splits over the same revision and moves
        # latestRolledoutRevision back; the next one pins the previous revision
        traffic = [{"latestRevision": True, "revisionName": latest_ready, "percent": pct},
                   {"latestRevision": False, "revisionName": rolled, "percent": 100 - pct}]
        rolled, previous = previous, ""
    elif pct is not None and rolled:
        traffic = [{"latestRevision": True, "revisionName": latest_ready, "percent": pct, "tag": "latest"}]
        if pct < 100:
            traffic.append({"latestRevision": False, "revisionName": rolled, "percent": 100 - pct, "tag": "prev"})
    else:
        traffic = [{"latestRevision": True, "revisionName": latest_ready, "percent": 100}]
        if latest_ready != rolled:
            previous, rolled = rolled, latest_ready
    return {"observedGeneration": isvc["metadata"].get("generation", 1),
            "components": {"predictor": {"latestCreatedRevision": latest_created, "latestReadyRevision": latest_ready,
                                         "latestRolledoutRevision": rolled, "previousRolledoutRevision": previous,
                                         "traffic": traffic}}}


class KServeStandIn(MemoryObjects):
    """MemoryObjects whose InferenceService status follows its spec after each write."""

    def reconcile(self, namespace: str = "default") -> dict[str, Any]:
        key = (kserve.GROUP, kserve.PLURAL, namespace, NAME)
        obj = self.objects[key]
        obj["status"] = knative_status(obj, obj.get("status"))
        return obj

    def json_patch(self, *args: Any) -> dict[str, Any]:
        out = super().json_patch(*args)
        key = (kserve.GROUP, kserve.PLURAL, args[3], args[4])
        self.objects[key]["metadata"]["generation"] = self.objects[key]["metadata"].get("generation", 1) + 1
        return out


def test_steps_promotion_and_rollback_on_the_seed():
    isvc = seed_isvc()
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    for w in (0, 25, 50, 100):
        new = apply_traffic(isvc, TrafficState(w))
        assert new["spec"]["predictor"]["canaryTrafficPercent"] == w
        assert {k: v for k, v in new["spec"]["predictor"].items() if k != "canaryTrafficPercent"} == \
            {k: v for k, v in isvc["spec"]["predictor"].items() if k != "canaryTrafficPercent"}
        assert_valid(new, INFERENCESERVICE_CRD)
    promoted = apply_traffic(isvc, TrafficState(100, promoted=True))
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert_valid(promoted, INFERENCESERVICE_CRD)
    ops = json_patch(isvc, promoted)
    assert ops == [{"op": "test", "path": "/spec/predictor", "value": isvc["spec"]["predictor"]},
                   {"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}]
    assert json_patch(isvc, apply_traffic(isvc, TrafficState(10))) == []
    ops = json_patch(promoted, apply_traffic(promoted, TrafficState(0)))
    assert ops[1] == {"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": 0}
    with pytest.raises(KServeError, match="no header or mirror routes"):
        from analyzer.core.steps import HeaderRoute

        apply_traffic(isvc, TrafficState(10, (HeaderRoute("x"),)))


def test_read_back_from_status_traffic():
    isvc = seed_isvc()
    isvc["metadata"]["generation"] = 1
    isvc["status"] = knative_status(isvc, None)
    t = read_traffic(isvc)
    assert (t.canary, t.latest_rolledout, t.problems) == (10, REV1, ())
    # the new revision is not ready: latestRevision points at the old ready one, the canary gets 0
    isvc["status"] = knative_status(isvc, None, latest_ready=REV1, latest_created=REV2)
    t = read_traffic(isvc)
    assert t.canary == 0 and any("not ready yet" in p for p in t.problems)
    # a status for an older generation is not trusted
    isvc["metadata"]["generation"] = 2
    isvc["status"] = knative_status(isvc, None)
    isvc["status"]["observedGeneration"] = 1
    assert any("generation 1" in p for p in read_traffic(isvc).problems)
    assert read_traffic({"metadata": {"name": NAME}, "spec": {}}).canary is None


def test_rollback_after_promotion_takes_two_kserve_reconciles():
    store = KServeStandIn()
    isvc = seed_isvc()
    isvc["metadata"]["generation"] = 1
    store.put(kserve.GROUP, kserve.PLURAL, isvc)
    router = KServeRouter(store, KServeRouting(NAME), "default")
    router.apply(TrafficState(100, promoted=True))
    store.reconcile()
    assert router.observe(TrafficState(100, promoted=True)).weight == 100
    assert read_traffic(store.reconcile()).latest_rolledout == REV2
    obs = router.apply(TrafficState(0))
    store.reconcile()
    obs = router.observe(TrafficState(0))
    assert obs.weight == 100  # first KServe pass after the rollback: still all on the new revision
    store.reconcile()
    obs = router.observe(TrafficState(0))
    assert obs.weight == 0 and not obs.problems


def test_concurrent_model_change_fails_the_guard():
    store = MemoryObjects()
    store.put(kserve.GROUP, kserve.PLURAL, seed_isvc())
    isvc = store.get(kserve.GROUP, "v1beta1", kserve.PLURAL, "default", NAME)
    ops = json_patch(isvc, apply_traffic(isvc, TrafficState(30)))
    store.objects[(kserve.GROUP, kserve.PLURAL, "default", NAME)]["spec"]["predictor"]["model"]["storageUri"] = "s3://models/v3"
    with pytest.raises(WriteConflict):
        store.json_patch(kserve.GROUP, "v1beta1", kserve.PLURAL, "default", NAME, ops)
    # the router re-reads and recomputes on top of the other writer's change
    router = KServeRouter(store, KServeRouting(NAME), "default", read_back="spec")
    assert router.apply(TrafficState(30)).weight == 30
    got = store.get(kserve.GROUP, "v1beta1", kserve.PLURAL, "default", NAME)
    assert got["spec"]["predictor"]["model"]["storageUri"] == "s3://models/v3"


def test_first_rollout_has_nothing_to_split_against():
    isvc = seed_isvc()
    isvc["status"] = {"components": {"predictor": {"latestCreatedRevision": REV1, "latestReadyRevision": REV1,
                                                   "traffic": [{"latestRevision": True, "percent": 100}]}}}
    obs = kserve.observe(isvc, TrafficState(10))
    assert obs.weight == 100 and any("no rolled-out revision yet" in p for p in obs.problems)


def test_whole_rollout_through_the_engine_against_the_fake_api_server(fake_kube):
    """ModelRollout with kserve routing: 10 -> analysis -> 50 -> promoted, every write through the
    real client, KServe's status written through /status by the stand-in controller."""
    isvc = seed_isvc()
    fake_kube.create(isvc)
    api = KubeCustomObjects(fake_kube.api_client())
    doc = {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "m"},
           "spec": {"trafficRouting": {"kserve": {"inferenceService": NAME}},
                    "steps": [{"setWeight": 10}, {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                              {"setWeight": 50}, {"pause": {"duration": "5m"}}]}}
    spec, _ = parse_rollout(doc)
    router = KServeRouter(api, spec.traffic.kserve, "default")

    def kserve_reconciles() -> None:
        obj = fake_kube.get("serving.kserve.io/v1beta1", "InferenceService", NAME)
        fake_kube.set_status("serving.kserve.io/v1beta1", "InferenceService", NAME,
                             knative_status(obj, obj.get("status")))

    kserve_reconciles()
    status, now, verdicts = RolloutStatus(), datetime(2026, 5, 1, tzinfo=UTC), {}
    seen: list[tuple[int | None, int | None]] = []
    for _ in range(100):
        d = decide(spec, status, Facts(verdicts), now)
        router.apply(d.traffic)
        kserve_reconciles()
        status = record_traffic(d.status, router.observe(d.traffic), now)
        seen.append((status.current_step_index, status.verified_weight))
        for a in d.actions:
            if isinstance(a, EnsureAnalysisRun):
                verdicts[a.name] = Verdict(Phase.SUCCESSFUL)
        got = fake_kube.get("serving.kserve.io/v1beta1", "InferenceService", NAME)
        assert_valid({k: v for k, v in got.items() if k != "status"} | {"status": got.get("status", {})},
                     INFERENCESERVICE_CRD)
        if status.promoted and status.verified_weight == 100 and not status.traffic_problems:
            break
        now += timedelta(seconds=d.requeue_after or 0)
    assert status.promoted
    got = fake_kube.get("serving.kserve.io/v1beta1", "InferenceService", NAME)
    assert "canaryTrafficPercent" not in got["spec"]["predictor"]
    assert got["status"]["components"]["predictor"]["latestRolledoutRevision"] == REV2
    weights = [w for _, w in seen]
    assert 10 in weights and 50 in weights and weights[-1] == 100
    assert weights.index(10) < weights.index(50)
    # the percentage written step by step, as the audit log of the fake shows
    written = [a["object"]["spec"]["predictor"].get("canaryTrafficPercent", "removed")
               for a in fake_kube.audit("serving.kserve.io/v1beta1", "InferenceService", NAME)
               if a.get("object") and a.get("subresource", "") in ("", None)]
    assert [w for i, w in enumerate(written) if i == 0 or written[i - 1] != w] == [10, 50, 100, "removed"]


def test_missing_inference_service():
    with pytest.raises(KServeError, match="not found"):
        KServeRouter(MemoryObjects(), KServeRouting("nope"), "default").observe(TrafficState(0))


def test_apply_is_idempotent():
    store = MemoryObjects()
    store.put(kserve.GROUP, kserve.PLURAL, copy.deepcopy(seed_isvc()))
    router = KServeRouter(store, KServeRouting(NAME), "default", read_back="spec")
    router.apply(TrafficState(40))
    router.apply(TrafficState(40))
    assert len(store.patches) == 1
