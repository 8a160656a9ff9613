"""The rollout CLI run as a user runs it (a subprocess of the installed ``analyzer``) against the
fake API server with our CRD, the controller's part played by the test through ``set_status``.
Also once against the local file store (``--store DIR``)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import REPO, analyzer_cmd, run_cli

MR = ("rollouts.analyzer.dev/v1alpha1", "ModelRollout")
CRD = REPO / "deploy" / "crd" / "modelrollout.yaml"

ROLLOUT: dict[str, Any] = {
    "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
    "metadata": {"name": "inference", "namespace": "default"},
    "spec": {
        "stable": {"host": "inference-v1"},
        "canary": {"host": "inference-v2"},
        "trafficRouting": {"istio": {"virtualServices": [{"name": "inference-routing"}]}},
        "steps": [{"setWeight": 5}, {"pause": {"duration": "10m"}},
                  {"analysis": {"templates": [{"templateName": "success-rate"}]}}, {"setWeight": 50}, {"pause": {}}],
    },
}

PAUSED = {
    "observedGeneration": 1, "phase": "Paused", "message": "CanaryPauseStep: paused for 10m",
    "currentStepIndex": 1, "updateHash": "0123456789abcdef", "attempt": 1,
    "weights": {"desired": 5, "verified": 5, "verifiedAt": "2026-11-28T10:00:00Z"},
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-28T10:00:00Z"}],
    "analysisRuns": [{"name": "inference-0123456-1-bg", "kind": "Background", "phase": "Running",
                      "startedAt": "2026-11-28T10:00:00Z"}],
}
HEALTHY = {"observedGeneration": 1, "phase": "Healthy", "message": "rollout completed", "currentStepIndex": 5,
           "updateHash": "0123456789abcdef", "promoted": True, "weights": {"desired": 100, "verified": 100},
           "analysisRuns": [{"name": "inference-0123456-1-2", "kind": "Step", "stepIndex": 2, "phase": "Successful"}]}
DEGRADED = {"observedGeneration": 1, "phase": "Degraded", "message": "analysis inference-0123456-1-2 Failed",
            "currentStepIndex": 2, "updateHash": "0123456789abcdef", "abort": True,
            "abortMessage": "analysis run inference-0123456-1-2 Failed: success-rate 0.91 < 0.99",
            "weights": {"desired": 0, "verified": 0},
            "analysisRuns": [{"name": "inference-0123456-1-2", "kind": "Step", "stepIndex": 2, "phase": "Failed",
                              "message": "metric success-rate assessed Failed"}]}


def make(name: str = "inference", namespace: str = "default") -> dict[str, Any]:
    doc = copy.deepcopy(ROLLOUT)
    doc["metadata"] = {"name": name, "namespace": namespace}
    return doc


@pytest.fixture
def kube(fake_kube: Any, tmp_path: Path) -> Any:
    """The fake with our CRD, one rollout paused at step 1, and a kubeconfig file for the CLI."""
    fake_kube.register_crd(CRD)
    fake_kube.create(make())
    fake_kube.set_status(*MR, "inference", PAUSED)
    fake_kube.cli_kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
    return fake_kube


def cli(kube: Any, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--kubeconfig", kube.cli_kubeconfig, timeout=timeout)


def cli_background(kube: Any, *args: str) -> subprocess.Popen[str]:
    """The CLI still running (watch, status waiting), for the test to change things under it."""
    return subprocess.Popen([*analyzer_cmd(), *args, "--kubeconfig", kube.cli_kubeconfig], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def spec(kube: Any, name: str = "inference", namespace: str = "default") -> dict[str, Any]:
    obj = kube.get(*MR, name, namespace)
    assert obj is not None
    return obj


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# ------------------------------------------------------------------ get / list


def test_get_rollout_shows_summary_steps_and_runs(kube: Any) -> None:
    r = cli(kube, "get", "rollout", "inference")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for text in ("Name:", "inference", "Paused", "CanaryPauseStep: paused for 10m", "Step:", "1/5",
                 "desired 5, verified 5", "setWeight: 5", "pause: 10m", "analysis: success-rate",
                 "pause: until promoted", "inference-0123456-1-bg", "Background", "Running", "0123456789ab"):
        assert text in out, (text, out)
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│ ") and line.count("│") == 4}
    assert "done" in rows["0"] and "paused" in rows["1"] and "pending" in rows["2"]
    # -o json is the stored object, for scripts
    j = cli(kube, "get", "rollouts", "inference", "-o", "json")
    assert j.returncode == 0 and json.loads(j.stdout)["status"] == spec(kube)["status"]


def test_get_rollout_watch_follows_until_it_completes(kube: Any) -> None:
    proc = cli_background(kube, "get", "rollout", "inference", "-w", "--poll-interval", "0.2")
    try:
        time.sleep(2.0)
        assert proc.poll() is None, proc.communicate()  # still watching a paused rollout
        kube.set_status(*MR, "inference", {**HEALTHY, "pauseConditions": None})
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    first, _, last = out.partition("─" * 20)
    assert "Paused" in first and "Healthy" in last and "rollout completed" in last
    assert "inference-0123456-1-2" in last and "Successful" in last


def test_list_rollouts_by_namespace_and_all(kube: Any) -> None:
    kube.create(make("ranker"))
    kube.create_namespace("ml")
    kube.create(make("llm", "ml"))
    kube.set_status(*MR, "llm", DEGRADED, "ml")
    r = cli(kube, "list", "rollouts")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].split()[:5] == ["NAME", "PHASE", "STEP", "DESIRED", "VERIFIED"]
    assert [ln.split()[0] for ln in lines[1:]] == ["inference", "ranker"]
    assert lines[1].split()[1:5] == ["Paused", "1/5", "5", "5"] and lines[2].split()[1] == "Pending"
    a = cli(kube, "list", "rollouts", "-A")
    names = [ln.split()[:3] for ln in a.stdout.strip().splitlines()[1:]]
    assert names == [["default", "inference", "Paused"], ["default", "ranker", "Pending"], ["ml", "llm", "Degraded"]]
    n = cli(kube, "list", "ro", "-n", "ml", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(n.stdout)["items"]] == ["llm"]
    empty = cli(kube, "list", "rollouts", "-n", "kube-system")
    assert empty.returncode == 0 and empty.stdout == "" and "No rollouts found in namespace kube-system" in empty.stderr


def test_namespace_defaults_to_the_contexts(kube: Any, tmp_path: Path) -> None:
    kube.create_namespace("ml")
    kube.create(make("llm", "ml"))
    kc = kube.write_kubeconfig(tmp_path / "ml-config", namespace="ml")
    r = run_cli("pause", "llm", "--kubeconfig", kc)
    assert r.returncode == 0, r.stderr
    assert spec(kube, "llm", "ml")["spec"]["paused"] is True
    one_line_error(run_cli("pause", "inference", "--kubeconfig", kc), "rollout ml/inference not found")


# ------------------------------------------------------------------ status


def test_status_exit_codes(kube: Any) -> None:
    kube.set_status(*MR, "inference", {**HEALTHY, "pauseConditions": None})
    ok = cli(kube, "status", "inference")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "Healthy, step 5/5, weight 100 (verified 100): rollout completed"

    kube.set_status(*MR, "inference", DEGRADED)
    bad = cli(kube, "status", "inference")
    assert bad.returncode == 1, bad.stderr
    assert "Degraded" in bad.stdout and "success-rate 0.91 < 0.99" in bad.stdout

    kube.set_status(*MR, "inference", {**PAUSED, "abort": None, "abortMessage": None})
    t0 = time.monotonic()
    slow = cli(kube, "status", "inference", "--timeout", "1s", "--poll-interval", "0.2")
    assert slow.returncode == 3, (slow.stdout, slow.stderr)
    assert time.monotonic() - t0 < 15
    assert slow.stdout.strip() == "Paused, step 1/5, weight 5 (verified 5): CanaryPauseStep: paused for 10m"
    assert "timed out after 1s" in slow.stderr


def test_status_waits_and_prints_each_change(kube: Any) -> None:
    proc = cli_background(kube, "status", "inference", "--timeout", "30s", "--poll-interval", "0.1")
    try:
        time.sleep(1.5)
        kube.set_status(*MR, "inference", {"phase": "Progressing", "message": "step 3: weight 50", "currentStepIndex": 3,
                                           "weights": {"desired": 50, "verified": 50}, "pauseConditions": None})
        time.sleep(1.0)
        kube.set_status(*MR, "inference", {**HEALTHY, "pauseConditions": None})
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip().splitlines() == [
        "Paused, step 1/5, weight 5 (verified 5): CanaryPauseStep: paused for 10m",
        "Progressing, step 3/5, weight 50 (verified 50): step 3: weight 50",
        "Healthy, step 5/5, weight 100 (verified 100): rollout completed",
    ]


def test_status_does_not_trust_a_verdict_for_an_older_spec(kube: Any) -> None:
    """Healthy from the previous generation is not the answer for a spec the controller has not seen."""
    kube.set_status(*MR, "inference", {**HEALTHY, "pauseConditions": None})
    kube.patch(*MR, "inference", {"spec": {"steps": [{"setWeight": 10}]}})  # a new update: generation 2
    r = cli(kube, "status", "inference", "--timeout", "1s", "--poll-interval", "0.2")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "spec change not yet seen by the controller" in r.stdout


def test_status_bad_timeout_is_usage(kube: Any) -> None:
    one_line_error(cli(kube, "status", "inference", "--timeout", "5 minutes"), "--timeout", "unknown unit")


# ------------------------------------------------------------------ verbs


def test_promote_and_promote_full_write_request_tokens(kube: Any) -> None:
    kube.patch(*MR, "inference", {"spec": {"paused": True}})
    before = spec(kube)
    r = cli(kube, "promote", "inference")
    assert r.returncode == 0, r.stderr
    assert "promote requested on default/inference" in r.stdout and "step 1" in r.stdout
    after = spec(kube)
    token = after["spec"]["requests"]["promote"]
    assert token and after["spec"]["paused"] is False  # promote also unpauses, as Argo's does
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["status"] == before["status"]  # a verb never writes status
    full = cli(kube, "promote", "inference", "--full")
    assert full.returncode == 0, full.stderr
    again = spec(kube)["spec"]["requests"]
    assert again["promoteFull"] and again["promoteFull"] != token and again["promote"] == token
    patches = [q for q in kube.requests if q["method"] == "PATCH" and q["path"].endswith("/modelrollouts/inference")]
    assert len(patches) == 2 and all(q["content_type"] == "application/merge-patch+json" for q in patches)


def test_abort_and_retry(kube: Any) -> None:
    assert cli(kube, "abort", "inference").returncode == 0
    assert spec(kube)["spec"]["requests"]["abort"]
    kube.set_status(*MR, "inference", DEGRADED)
    r = cli(kube, "retry", "inference")
    assert r.returncode == 0 and "retry requested" in r.stdout
    assert spec(kube)["spec"]["requests"]["retry"]


def test_pause_and_resume_flip_spec_paused(kube: Any) -> None:
    kube.set_status(*MR, "inference", {"phase": "Progressing", "pauseConditions": None, "message": "step 0"})
    assert cli(kube, "pause", "inference").returncode == 0
    assert spec(kube)["spec"]["paused"] is True
    assert cli(kube, "resume", "inference").returncode == 0
    assert spec(kube)["spec"]["paused"] is False and "requests" not in spec(kube)["spec"]
    # resuming a rollout held by a pause step also ends the pause (a promote request)
    kube.set_status(*MR, "inference", PAUSED)
    assert cli(kube, "resume", "inference").returncode == 0
    assert spec(kube)["spec"]["requests"]["promote"]


# ------------------------------------------------------------------ errors


def test_unknown_rollout_is_one_line_exit_2(kube: Any) -> None:
    for verb in ("promote", "resume", "status"):
        one_line_error(cli(kube, verb, "nope"), "rollout default/nope not found")
    one_line_error(cli(kube, "get", "rollout", "nope", "-n", "ml"), "rollout ml/nope not found")


def test_connection_problems_are_one_line_exit_2(kube: Any, tmp_path: Path) -> None:
    one_line_error(run_cli("list", "rollouts", "--kubeconfig", str(tmp_path / "missing")), "no such file")
    one_line_error(cli(kube, "list", "rollouts", "--context", "prod"), "no context 'prod'", "fakekube")
    bad = tmp_path / "bad"
    bad.write_text("clusters: [\n")
    one_line_error(run_cli("get", "rollout", "inference", "--kubeconfig", str(bad)), str(bad))
    dead = tmp_path / "dead"
    dead.write_text(Path(kube.cli_kubeconfig).read_text().replace(f":{kube.port}", ":1"))
    one_line_error(run_cli("promote", "inference", "--kubeconfig", str(dead)), "cannot reach the Kubernetes API server")
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)
    none = subprocess.run([*analyzer_cmd(), "status", "inference"], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=60)
    one_line_error(none, "no Kubernetes cluster configured")


def test_api_errors_are_one_line_exit_2(kube: Any) -> None:
    kube.inject_error("GET", r"/modelrollouts", 500, times=1, message="etcd is on fire")
    one_line_error(cli(kube, "list", "rollouts"), "500", "etcd is on fire")
    kube.inject_error("PATCH", r"/modelrollouts/inference", 403, times=1, reason="Forbidden", message="no patch for you")
    one_line_error(cli(kube, "pause", "inference"), "403", "no patch for you")
    assert "paused" not in spec(kube)["spec"]


def test_status_rides_out_a_transient_api_error(kube: Any) -> None:
    kube.inject_error("GET", r"/modelrollouts/inference$", 503, times=1, reason="ServiceUnavailable", message="try later")
    # the first read fails: there is nothing to wait for, so it is an error at once...
    one_line_error(cli(kube, "status", "inference"), "503", "try later")
    # ...but once waiting, a blip is reported (once) and the wait goes on
    proc = cli_background(kube, "status", "inference", "--poll-interval", "0.1")
    try:
        time.sleep(1.5)
        kube.inject_error("GET", r"/modelrollouts/inference$", 503, times=3, reason="ServiceUnavailable", message="try later")
        time.sleep(1.0)
        kube.set_status(*MR, "inference", {**HEALTHY, "pauseConditions": None})
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip().splitlines()[-1].startswith("Healthy"), err
    warnings = err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "503" in warnings[0] and "still waiting" in warnings[0]


# ------------------------------------------------------------------ the local store


def test_local_store_verbs_and_status(tmp_path: Path) -> None:
    from analyzer.local.store import LocalRolloutStore

    store = LocalRolloutStore(tmp_path / "store")
    store.apply(make())
    d = str(tmp_path / "store")
    r = run_cli("pause", "inference", "--store", d)
    assert r.returncode == 0, r.stderr
    assert store.get("default", "inference")["spec"]["paused"] is True  # type: ignore[index]
    listed = run_cli("list", "rollouts", "--store", d)
    assert listed.returncode == 0 and "inference" in listed.stdout and "Pending" in listed.stdout
    obj = store.get("default", "inference")
    assert obj is not None
    store.update_status("default", "inference", {**HEALTHY, "observedGeneration": obj["metadata"]["generation"]},
                        obj["metadata"]["resourceVersion"])
    ok = run_cli("status", "inference", "--store", d)
    assert ok.returncode == 0 and ok.stdout.startswith("Healthy"), ok.stderr
    out = yaml.safe_load(run_cli("get", "rollout", "inference", "--store", d, "-o", "yaml").stdout)
    assert out["status"]["phase"] == "Healthy"
    one_line_error(run_cli("promote", "nope", "--store", d), "rollout default/nope not found")
    one_line_error(run_cli("promote", "inference", "--store", d, "--context", "x"), "--store uses local files")


def test_steps_table_after_an_abort_shows_where_it_failed() -> None:
    """Argo puts the step index back to 0 on abort; the table still shows the failed step."""
    from analyzer.rollout_cli.view import steps_table

    obj = {"spec": {"steps": [{"setWeight": 5}, {"analysis": {"templates": [{"templateName": "t"}]}},
                              {"setWeight": 50}]},
           "status": {"phase": "Degraded", "abort": True, "currentStepIndex": 0,
                      "analysisRuns": [{"name": "r", "kind": "Step", "stepIndex": 1, "phase": "Failed"},
                                       {"name": "bg", "kind": "Background", "phase": "Successful"}]}}
    states = [str(c) for c in steps_table(obj).columns[2]._cells]
    assert states == ["done", "failed: rolled back", "-"]
