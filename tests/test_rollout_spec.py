"""Parsing ModelRollout and Argo Rollout manifests into the typed spec (field-path errors), the
status JSON round trip, and our CRD on the fake API server (structural schema, status subresource)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from crd_validation import ARGO_ROLLOUT_CRD, MODELROLLOUT_CRD, assert_valid, errors
from test_plan_cli import MODEL_ROLLOUT

from analyzer.core.steps import (
    AnalysisRunRecord,
    Condition,
    Destination,
    MatchKind,
    PauseCondition,
    PauseReason,
    RolloutPhase,
    RolloutStatus,
    RunKind,
    StepKind,
)
from analyzer.rollout.spec import RolloutSpecError, load_rollout, parse_rollout
from analyzer.rollout.status import status_from_json, status_to_json

SEED = Path(__file__).resolve().parent / "data" / "seed-manifests"


def problems(doc: dict) -> list[str]:
    with pytest.raises(RolloutSpecError) as exc:
        parse_rollout(doc, "r.yaml")
    return [e.render("r.yaml") for e in exc.value.errors]


def with_spec(**changes: object) -> dict:
    doc = copy.deepcopy(MODEL_ROLLOUT)
    doc["spec"].update(changes)
    return doc


def test_seed_argo_rollout():
    spec, warnings = load_rollout(SEED / "05-argo-rollout-canary.yaml")
    assert spec.kind == "Rollout" and spec.name == "inference-rollout" and not warnings
    assert spec.stable == Destination("inference-stable") and spec.canary == Destination("inference-canary")
    assert [s.kind for s in spec.steps] == [StepKind.SET_WEIGHT, StepKind.PAUSE, StepKind.ANALYSIS] * 2 + [
        StepKind.SET_WEIGHT, StepKind.PAUSE, StepKind.SET_WEIGHT]
    assert [s.pause_seconds for s in spec.steps if s.kind is StepKind.PAUSE] == [600, 600, 900]
    assert spec.steps[2].analysis.templates[0].name == "success-rate"
    assert spec.traffic.istio is None and spec.update_hash
    doc = next(d for d in yaml.safe_load_all((SEED / "05-argo-rollout-canary.yaml").read_text()) if d["kind"] == "Rollout")
    assert_valid(doc, ARGO_ROLLOUT_CRD)


def test_argo_rollout_with_istio_subsets_and_managed_routes():
    doc = yaml.safe_load("""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: r, generation: 3}
spec:
  paused: true
  progressDeadlineSeconds: 900
  progressDeadlineAbort: true
  strategy:
    canary:
      minPodsPerReplicaSet: 2
      trafficRouting:
        managedRoutes: [{name: hdr}]
        istio:
          virtualServices: [{name: vs1, routes: [primary]}, {name: vs2.other-ns}]
          destinationRule: {name: dr, canarySubsetName: canary, stableSubsetName: stable}
      analysis:
        templates: [{templateName: bg}]
        startingStep: 1
        args: [{name: hash, valueFrom: {podTemplateHashValue: Latest}}]
      steps:
      - setHeaderRoute: {name: hdr, match: [{headerName: x-v, headerValue: {regex: "v2.*"}}]}
      - setWeight: 20
      - pause: {duration: 30}
      - pause: {duration: "45"}
      - pause: {duration: 1h30m}
""")
    assert_valid(doc, ARGO_ROLLOUT_CRD)
    spec, _ = parse_rollout(doc)
    assert spec.stable == Destination(None, "stable") and spec.canary == Destination(None, "canary")
    vss = spec.traffic.istio.virtual_services
    assert [(v.name, v.namespace, v.routes) for v in vss] == [("vs1", None, ("primary",)), ("vs2", "other-ns", ())]
    assert spec.traffic.istio.destination_rule == "dr" and spec.traffic.managed_routes == ("hdr",)
    assert spec.steps[0].header_route.match[0].value.kind is MatchKind.REGEX
    assert [s.pause_seconds for s in spec.steps[2:]] == [30, 45, 5400]
    assert spec.background.starting_step == 1 and spec.background.analysis.args[0].value_from == {
        "podTemplateHashValue": "Latest"}
    assert spec.paused and spec.capacity.min_ready_replicas == 2 and spec.capacity.progress_deadline_abort
    assert spec.capacity.progress_deadline_seconds == 900 and spec.generation == 3


def test_model_rollout_typed():
    spec, warnings = parse_rollout(MODEL_ROLLOUT)
    assert not warnings
    assert spec.kind == "ModelRollout" and spec.namespace == "ml"
    assert spec.stable.workload.name == "inference-v1" and spec.canary.host == "inference-v2.ml.svc.cluster.local"
    assert spec.managed_route_names() == ("mirror-post", "beta-users")
    assert spec.steps[2].mirror_route.percentage == 10 and spec.steps[5].mirror_route.match == ()
    assert spec.steps[0].canary_scale.replicas == 1
    assert spec.steps[7].analysis.args[0].value == "v2"
    assert spec.judge == {"metric": "errors", "alpha": 0.05} and spec.capacity.min_ready_replicas == 2
    assert spec.background.starting_step == 3
    # requests and pause do not change the update's identity; steps do
    same, _ = parse_rollout(with_spec(requests={"promote": "x"}, paused=True))
    other, _ = parse_rollout(with_spec(steps=MODEL_ROLLOUT["spec"]["steps"][:-1]))
    assert same.update_hash == spec.update_hash != other.update_hash


@pytest.mark.parametrize("change, expected", [
    ({"steps": [{"setWeight": 10, "pause": {}}]}, "r.yaml: spec.steps[0]: a step has exactly one type, got setWeight and pause"),
    ({"steps": [{"experiment": {"templates": []}}]}, "r.yaml: spec.steps[0].experiment: experiment steps are not supported"),
    ({"steps": [{"setWieght": 10}]}, "r.yaml: spec.steps[0].setWieght: unknown field (did you mean 'setWeight'?)"),
    ({"steps": [{"pause": {"duration": -5}}]}, "r.yaml: spec.steps[0].pause.duration: must not be negative, got -5"),
    ({"steps": [{"setCanaryScale": {"replicas": 2, "weight": 5}}]},
     "r.yaml: spec.steps[0].setCanaryScale: needs exactly one of replicas, weight or matchTrafficWeight: true"),
    ({"steps": [{"setHeaderRoute": {"name": "other", "match": [{"headerName": "a", "headerValue": {"exact": "1"}}]}}]},
     "r.yaml: spec.steps[0].setHeaderRoute.name: 'other' is not listed in spec.trafficRouting.managedRoutes"),
    ({"steps": [{"setHeaderRoute": {"name": "beta-users", "match": [{"headerName": "a", "headerValue": {}}]}}]},
     "r.yaml: spec.steps[0].setHeaderRoute.match[0].headerValue: needs exactly one of exact, prefix or regex (non-empty)"),
    ({"steps": [{"analysis": {"templates": []}}]}, "r.yaml: spec.steps[0].analysis.templates: at least one template is required"),
    ({"analysis": {"templates": [{"templateName": "t"}], "startingStep": 8}},
     "r.yaml: spec.analysis.startingStep: must be a step index (0..7), got 8"),
    ({"trafficRouting": {"istio": {"virtualServices": [{"name": "a"}]}, "kserve": {"inferenceService": "b"}}},
     "r.yaml: spec.trafficRouting: give istio or kserve, not both"),
    ({"canary": {"host": "inference-v1"}}, "r.yaml: spec.canary: is the same destination as stable (inference-v1)"),
    ({"canary": {"subset": "v2"}}, "r.yaml: spec.canary: stable and canary must both name a subset"),
    ({"capacity": {"minReadyReplicas": "2"}}, "r.yaml: spec.capacity.minReadyReplicas: must be an integer, got a string"),
])
def test_field_path_errors(change, expected):
    got = problems(with_spec(**change))
    assert any(p.startswith(expected) for p in got), got


def test_kserve_rollout_with_header_route_is_refused():
    doc = {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "m"},
           "spec": {"trafficRouting": {"kserve": {"inferenceService": "isvc"}},
                    "steps": [{"setHeaderRoute": {"name": "h", "match": [{"headerName": "a", "headerValue": {"exact": "1"}}]}}]}}
    assert any("has no header or mirror routes" in p for p in problems(doc))


def test_wrong_kind_and_multi_document_paths(tmp_path):
    assert problems({"apiVersion": "v1", "kind": "ConfigMap"}) == ["r.yaml: kind: must be ModelRollout or Rollout, got 'ConfigMap'"]
    f = tmp_path / "two.yaml"
    bad = with_spec(paused="yes")
    f.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, bad]))
    with pytest.raises(RolloutSpecError) as exc:
        load_rollout(f)
    assert f"{f}: document[1].spec.paused: must be true or false, got a string" in str(exc.value)


def test_status_round_trip_and_crd():
    t = datetime(2026, 4, 1, 8, 30, tzinfo=UTC)
    st = RolloutStatus(
        observed_generation=4, phase=RolloutPhase.PAUSED, message="InconclusiveAnalysisRun: no data",
        current_step_index=2, update_hash="abc", attempt=2, desired_weight=20, verified_weight=20, verified_at=t,
        routes=["pin"], pause_conditions=[PauseCondition(PauseReason.INCONCLUSIVE_ANALYSIS, t, "no data")],
        controller_pause=True, step_started_at=t, reference_replicas=10, background_runs=1,
        analysis_runs=[AnalysisRunRecord("r-abc-2-2", RunKind.STEP, 2, "Inconclusive", "no data", t, t,
                                         detail={"phase": "Inconclusive", "metricResults": [{"name": "m", "measurements": []}]})],
        conditions=[Condition("Paused", "True", "InconclusiveAnalysisRun", "no data", t, t)],
        handled_requests={"promote": "1"})
    data = status_to_json(st)
    assert status_from_json(data) == st
    assert status_from_json({}) == RolloutStatus()
    assert_valid({**MODEL_ROLLOUT, "status": data}, MODELROLLOUT_CRD)
    assert errors({**MODEL_ROLLOUT, "status": {**data, "phase": "Running"}}, MODELROLLOUT_CRD)


def test_our_crd_on_the_fake_api_server(fake_kube):
    fake_kube.register_crd(yaml.safe_load(Path(MODELROLLOUT_CRD).read_text()))
    fake_kube.create_namespace("ml")
    created = fake_kube.create(copy.deepcopy(MODEL_ROLLOUT))
    assert created["spec"]["capacity"]["minReadyReplicas"] == 2
    # the main endpoint ignores .status; the status subresource takes it
    st = status_to_json(RolloutStatus(phase=RolloutPhase.PROGRESSING, current_step_index=0, desired_weight=5))
    out = fake_kube.set_status("rollouts.analyzer.dev/v1alpha1", "ModelRollout", "inference", st, namespace="ml")
    assert out["status"]["weights"]["desired"] == 5 and out["metadata"]["generation"] == created["metadata"]["generation"]
    bad = copy.deepcopy(MODEL_ROLLOUT)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["steps"] = [{"setWeight": 101}]
    assert fake_kube.validate(bad, namespace="ml")
    defaulted = copy.deepcopy(MODEL_ROLLOUT)
    defaulted["metadata"]["name"] = "defaults"
    defaulted["spec"]["capacity"] = {}
    got = fake_kube.create(defaulted)
    assert got["spec"]["capacity"] == {"minReadyReplicas": 1, "progressDeadlineSeconds": 600}
    spec, _ = parse_rollout(got)
    assert spec.capacity.min_ready_replicas == 1
