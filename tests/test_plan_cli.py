"""`analyzer plan` as a user runs it (a real subprocess): the issue's acceptance command on the
seed manifests, every VirtualService checked against the Istio CRD, managed routes, KServe,
errors with exit 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from cli_helpers import REPO, run_cli
from crd_validation import INFERENCESERVICE_CRD, MODELROLLOUT_CRD, VIRTUALSERVICE_CRD, assert_valid

DATA = Path(__file__).resolve().parent / "data" / "seed-manifests"
SHARED = REPO.parent / "shared" / "seed-manifests"


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("plan", *args)


def seed_paths() -> list[Path]:
    """Our copies always; the originals in ../shared too when they are there."""
    return [DATA] + ([SHARED] if (SHARED / "05-argo-rollout-canary.yaml").exists() else [])


@pytest.mark.parametrize("base", seed_paths(), ids=lambda p: p.parent.name)
def test_acceptance_seed_rollout_on_seed_virtual_services(base):
    r = run_plan(str(base / "05-argo-rollout-canary.yaml"), "--virtualservice", str(base / "06-istio-traffic-split.yaml"),
                 "--stable", "inference-v1", "--canary", "inference-v2", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["step"] for row in rows] == list(range(9)) + ["promoted"]
    assert [row["canary_weight"] for row in rows[:9]] == [5, 5, 5, 25, 25, 25, 50, 50, 100]
    assert rows[-1]["canary_weight"] == 100
    assert rows[0]["step_spec"] == {"setWeight": 5}
    assert rows[1]["step_spec"] == {"pause": {"duration": "10m"}}
    assert rows[2]["step_spec"] == {"analysis": {"templates": [{"templateName": "success-rate"}]}}
    assert rows[-1]["step_spec"] is None
    original = [d for d in yaml.safe_load_all((base / "06-istio-traffic-split.yaml").read_text()) if d]
    for row in rows:
        vss = row["virtualservices"]
        assert [v["metadata"]["name"] for v in vss] == ["inference-routing", "ab-testing"]
        for v in vss:
            assert_valid(v, VIRTUALSERVICE_CRD)
        assert vss[0]["spec"]["http"][0] == original[0]["spec"]["http"][0]  # x-model-version: v2, untouched
        assert vss[1] == original[1]  # the A/B VirtualService, untouched
        weights = {d["destination"]["host"]: d["weight"] for d in vss[0]["spec"]["http"][1]["route"]}
        assert weights == {"inference-v1": 100 - row["canary_weight"], "inference-v2": row["canary_weight"]}
        assert vss[0]["metadata"] == original[0]["metadata"] and vss[0]["spec"]["hosts"] == original[0]["spec"]["hosts"]


def test_table_output():
    r = run_plan(str(DATA / "05-argo-rollout-canary.yaml"), "--virtualservice", str(DATA / "06-istio-traffic-split.yaml"),
                 "--stable", "inference-v1", "--canary", "inference-v2")
    assert r.returncode == 0, r.stderr
    assert "setWeight: 25" in r.stdout and "pause: 15m" in r.stdout and "promoted" in r.stdout
    assert "inference-v1=75 inference-v2=25" in r.stdout


MODEL_ROLLOUT = {
    "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
    "metadata": {"name": "inference", "namespace": "ml"},
    "spec": {
        "stable": {"host": "inference-v1", "workloadRef": {"kind": "Deployment", "name": "inference-v1"}},
        "canary": {"host": "inference-v2.ml.svc.cluster.local"},
        "trafficRouting": {"istio": {"virtualServices": [{"name": "inference-routing"}]},
                           "managedRoutes": [{"name": "mirror-post"}, {"name": "beta-users"}]},
        "steps": [
            {"setCanaryScale": {"replicas": 1}},
            {"setHeaderRoute": {"name": "beta-users", "match": [{"headerName": "x-user-group",
                                                                 "headerValue": {"exact": "beta"}}]}},
            {"setMirrorRoute": {"name": "mirror-post", "percentage": 10,
                                "match": [{"method": {"exact": "POST"}, "path": {"prefix": "/v2/models"}}]}},
            {"setWeight": 10},
            {"pause": {}},
            {"setMirrorRoute": {"name": "mirror-post"}},
            {"setWeight": 50},
            {"analysis": {"templates": [{"templateName": "success-rate"}],
                          "args": [{"name": "canary-version", "value": "v2"}]}},
        ],
        "analysis": {"templates": [{"templateName": "latency-check"}], "startingStep": 3},
        "judge": {"metric": "errors", "alpha": 0.05},
        "capacity": {"minReadyReplicas": 2, "progressDeadlineSeconds": 900},
    },
}


def test_model_rollout_with_managed_routes(tmp_path):
    assert_valid(MODEL_ROLLOUT, MODELROLLOUT_CRD)
    f = tmp_path / "rollout.yaml"
    f.write_text(yaml.safe_dump(MODEL_ROLLOUT))
    r = run_plan(str(f), "--virtualservice", str(DATA / "06-istio-traffic-split.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["canary_weight"] for row in rows] == [0, 0, 0, 10, 10, 10, 50, 50, 100]
    names = [[h.get("name") for h in row["virtualservices"][0]["spec"]["http"]] for row in rows]
    assert names[1] == ["beta-users", None, None]
    assert names[2] == names[3] == names[4] == ["mirror-post", "beta-users", None, None]
    assert names[5] == names[6] == names[7] == ["beta-users", None, None]
    assert names[-1] == [None, None]  # promoted: managed routes removed
    mirror = rows[3]["virtualservices"][0]["spec"]["http"][0]
    assert mirror["mirror"] == {"host": "inference-v2", "port": {"number": 8000}}
    assert [d["weight"] for d in mirror["route"]] == [90, 10]
    for row in rows:
        for v in row["virtualservices"]:
            assert_valid(v, VIRTUALSERVICE_CRD)


def test_kserve_plan(tmp_path):
    doc = {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "m"},
           "spec": {"trafficRouting": {"kserve": {"inferenceService": "model-v2-canary"}},
                    "steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}, {"setWeight": 25}, {"setWeight": 50}]}}
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = run_plan(str(f), "--inferenceservice", str(DATA / "04-kserve-canary.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    percents = [row["inferenceservices"][0]["spec"]["predictor"].get("canaryTrafficPercent", "removed") for row in rows]
    assert percents == [10, 10, 25, 50, "removed"]
    for row in rows:
        assert_valid(row["inferenceservices"][0], INFERENCESERVICE_CRD)


def test_errors_name_the_file_and_field(tmp_path):
    bad = json.loads(json.dumps(MODEL_ROLLOUT))
    bad["spec"]["steps"][3] = {"setWeight": 150}
    bad["spec"]["steps"][4] = {"pause": {"duration": "1d"}}
    bad["spec"]["stable"]["hots"] = "x"
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    r = run_plan(str(f), "--virtualservice", str(DATA / "06-istio-traffic-split.yaml"), "--json")
    assert r.returncode == 2 and not r.stdout
    assert f"{f}: spec.steps[3].setWeight: must be within 0..100, got 150" in r.stderr
    assert f"{f}: spec.steps[4].pause.duration: invalid duration '1d'" in r.stderr
    assert f"{f}: spec.stable.hots: unknown field (did you mean 'host'?)" in r.stderr


def test_no_weighted_route_without_the_right_hosts():
    r = run_plan(str(DATA / "05-argo-rollout-canary.yaml"), "--virtualservice", str(DATA / "06-istio-traffic-split.yaml"),
                 "--json")
    assert r.returncode == 2
    assert "inference-stable" in r.stderr and "--stable/--canary" in r.stderr


def test_usage_errors(tmp_path):
    r = run_plan(str(DATA / "05-argo-rollout-canary.yaml"))
    assert r.returncode == 2 and "--virtualservice" in r.stderr
    r = run_plan(str(DATA / "05-argo-rollout-canary.yaml"), "--virtualservice", str(DATA / "04-kserve-canary.yaml"))
    assert r.returncode == 2 and "expected a VirtualService, got 'InferenceService'" in r.stderr
    missing = tmp_path / "nope.yaml"
    r = run_plan(str(missing), "--virtualservice", str(DATA / "06-istio-traffic-split.yaml"))
    assert r.returncode == 2 and "cannot read file" in r.stderr
