"""Crash safety: ``analyzer run`` as a process, SIGKILLed at random points of scripted rollouts
(seeded RNG, at least 50 kills) and restarted, against the fake API server in its own process
(it survives the daemon's deaths).

A reference set of rollouts runs first with no crash. Then the same script runs under the
killing; afterwards, from the API server's audit log (every stored version of every object):

* every rollout ends where its reference twin ended (phase, final weight, and the sequence of
  weights written, which is the plan's order);
* no VirtualService ever held a canary weight outside the plan, nor a split not summing to 100;
* no analysis was skipped: the first stored status that moved past the analysis step carries
  that step's run as Successful with the template's full count of measurements (or, for the
  failing rollout, the first aborted status carries a Failed run with its failed measurement).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from daemon_fixtures import (
    MEASUREMENTS,
    MODELROLLOUT_CRD,
    PLAN_WEIGHTS,
    HealthServer,
    canary_weight,
    create_all,
    finished,
    get_rollout,
)
from fakekube.fake import DEFAULT_CRDS_DIR

ANALYSIS_STEP = 3
SEED = 20240917
MIN_KILLS = 50
WAVE = ["a", "b", "c", "d", "bad"]  # "bad" answers 0.2: its analysis fails and it rolls back


def daemon(kubeconfig: str, log: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "analyzer.cli", "run", "--kubeconfig", kubeconfig, "-n", "default",
           "--id", "crashy", "--listen", "off", "--workers", "3", "--resync", "5",
           "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5", "--log-level", "warning"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def versions(audit: list[dict[str, Any]], plural: str, name: str) -> list[dict[str, Any]]:
    return [e["object"] for e in audit if e["name"] == name and plural in "/".join(e["storageKey"])
            and e["type"] != "DELETED"]


def dedup(seq: list[Any]) -> list[Any]:
    return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]


def step_run(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in status.get("analysisRuns") or [] if r.get("stepIndex") == ANALYSIS_STEP), None)


def check_no_skipped_analysis(name: str, history: list[dict[str, Any]], failing: bool) -> None:
    statuses = [v.get("status") or {} for v in history]
    if failing:
        first = next(s for s in statuses if s.get("abort"))
        run = step_run(first)
        assert run is not None and run["phase"] == "Failed", (name, run)
        metric = run["status"]["metricResults"][0]
        assert metric["failed"] >= 1 and any(m["phase"] == "Failed" for m in metric["measurements"]), (name, metric)
        return
    moved = [s for s in statuses if int(s.get("currentStepIndex") or 0) > ANALYSIS_STEP or s.get("promoted")]
    assert moved, f"{name} never passed its analysis step"
    run = step_run(moved[0])
    assert run is not None and run["phase"] == "Successful", (name, run)
    metric = run["status"]["metricResults"][0]
    assert metric["count"] >= MEASUREMENTS and metric["successful"] >= MEASUREMENTS, (name, metric)
    assert len(metric["measurements"]) >= MEASUREMENTS
    # And no stored version ever shows the step done with a run that was not.
    for s in moved:
        r = step_run(s)
        assert r is not None and r["phase"] == "Successful" and r["status"]["metricResults"][0]["count"] >= MEASUREMENTS


def outcome(fake: Any, audit: list[dict[str, Any]], name: str) -> tuple[str, int | None, list[int | None]]:
    api = fake.api_client()
    status = get_rollout(api, name).get("status") or {}
    weights = [canary_weight(v) for v in versions(audit, "virtualservices", f"vs-{name}")]
    return status.get("phase", ""), weights[-1], dedup(weights)


def wait_finished(api: Any, names: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(finished(get_rollout(api, n).get("status") or {}) for n in names):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("fake_kube_process", [{"crds": [DEFAULT_CRDS_DIR, str(MODELROLLOUT_CRD)]}], indirect=True)
def test_sigkill_at_random_points_changes_nothing(fake_kube_process: Any, health: HealthServer, tmp_path: Any) -> None:
    fake = fake_kube_process
    api = fake.api_client()
    rng = random.Random(SEED)
    health.values.update({"ref-bad": 0.2, "w1-bad": 0.2, "w2-bad": 0.2})
    log = (tmp_path / "daemon.log").open("ab")

    # 1. The reference: the same script, no crash.
    ref = [f"ref-{n}" for n in WAVE]
    create_all(api, ref, health.url, interval="1s")
    proc = daemon(fake.kubeconfig_path, log)
    try:
        assert wait_finished(api, ref, 60), "the reference rollouts did not finish"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)

    # 2. The same script under SIGKILL. A second wave starts half way, so kills land in every
    # part of a rollout (list, watch, analysis, traffic, status write), not only at its start.
    waves = [[f"w1-{n}" for n in WAVE], [f"w2-{n}" for n in WAVE]]
    create_all(api, waves[0], health.url, with_template=False)
    kills = 0
    started = time.monotonic()
    second_wave = False
    while True:
        proc = daemon(fake.kubeconfig_path, log)
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is not None:
            pytest.fail(f"the daemon exited by itself with {proc.returncode}: see {tmp_path / 'daemon.log'}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if kills == MIN_KILLS // 2 and not second_wave:
            create_all(api, waves[1], health.url, with_template=False)
            second_wave = True
        done = all(finished(get_rollout(api, n).get("status") or {}) for n in waves[0] + waves[1]) if second_wave \
            else False
        if kills >= MIN_KILLS and done:
            break
        assert time.monotonic() - started < 170, f"too slow: {kills} kills so far"
        if kills >= MIN_KILLS:  # enough kills: let one daemon finish the rest undisturbed
            proc = daemon(fake.kubeconfig_path, log)
            try:
                assert wait_finished(api, waves[0] + waves[1], 60), "rollouts did not finish after the kills"
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
            break
    assert kills >= MIN_KILLS

    audit = fake.audit()
    for vs in [e["object"] for e in audit if "virtualservices" in "/".join(e["storageKey"])]:
        for route in vs["spec"]["http"]:
            dests = route.get("route", [])
            if len(dests) == 2:
                w = canary_weight(vs)
                assert w in PLAN_WEIGHTS, f"{vs['metadata']['name']}: weight {w} is not in the plan"
                assert sum(int(d.get("weight", 0)) for d in dests) == 100, vs["metadata"]["name"]

    for wave in waves:
        for name, twin in zip(wave, ref, strict=True):
            assert outcome(fake, audit, name) == outcome(fake, audit, twin), name
            check_no_skipped_analysis(name, versions(audit, "modelrollouts", name), failing=name.endswith("bad"))
        # Sanity of the reference itself: healthy ones promoted, the failing one rolled back.
    assert outcome(fake, audit, "ref-a") == ("Healthy", 100, [10, 5, 25, 50, 100])
    assert outcome(fake, audit, "ref-bad") == ("Degraded", 0, [10, 5, 25, 0])
