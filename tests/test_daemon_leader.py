"""Two ``analyzer run`` processes with leader election on a Lease: only the leader writes; when
it is SIGKILLed the other takes over within the lease duration and finishes the rollouts.

Who wrote what comes from the fake API server's request log: each daemon's User-Agent carries
its ``--id``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from daemon_fixtures import (
    MODELROLLOUT_CRD,
    PLAN_WEIGHTS,
    HealthServer,
    canary_weight,
    create_all,
    finished,
    get_rollout,
)
from fakekube.fake import DEFAULT_CRDS_DIR
from kubernetes import client

LEASE_DURATION = 4.0
RETRY = 0.5
NAMES = ["l1", "l2", "l3", "l4", "lbad"]
WRITES = ("PUT", "PATCH", "POST", "DELETE")


def daemon(kubeconfig: str, identity: str, log: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "analyzer.cli", "run", "--kubeconfig", kubeconfig, "-n", "default",
           "--id", identity, "--listen", "off", "--lease-duration", str(LEASE_DURATION), "--renew-deadline", "3",
           "--retry-period", str(RETRY), "--lease-namespace", "kube-system", "--log-level", "info"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def holder(api: Any) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease("rollout-analyzer", "kube-system")
    except client.ApiException:
        return None
    return str(lease.spec.holder_identity or "")


def wait_for(predicate: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def rollout_writes(requests: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(index, user agent, path) of every write the daemons made to rollouts, routes and events."""
    return [(i, r["user_agent"], r["path"]) for i, r in enumerate(requests)
            if r["method"] in WRITES and any(p in r["path"] for p in ("/modelrollouts", "/virtualservices", "/events"))]


@pytest.mark.parametrize("fake_kube_process", [{"crds": [DEFAULT_CRDS_DIR, str(MODELROLLOUT_CRD)]}], indirect=True)
def test_only_the_leader_acts_and_a_standby_takes_over_after_sigkill(fake_kube_process: Any, health: HealthServer,
                                                                       tmp_path: Any) -> None:
    fake = fake_kube_process
    api = fake.api_client()
    health.values["lbad"] = 0.2
    log = (tmp_path / "daemons.log").open("ab")
    first = daemon(fake.kubeconfig_path, "one", log)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: holder(api) == "one", 30, "daemon one to lead")
        second = daemon(fake.kubeconfig_path, "two", log)
        wait_for(lambda: any(r["user_agent"] == "rollout-analyzer/two" for r in fake.control("requests", method="GET")["requests"]),
                 30, "daemon two to start campaigning")
        for name in NAMES:
            create_all(api, [name], health.url, interval="1s", with_template=name == NAMES[0])
        # Kill the leader in the middle: some rollout has reached its analysis step at 25 %.
        wait_for(lambda: any(int((get_rollout(api, n).get("status") or {}).get("currentStepIndex") or 0) >= 3
                             for n in NAMES), 30, "progress under the first leader")
        before_kill = len(fake.control("requests", method="GET")["requests"])
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        took = wait_for(lambda: holder(api) == "two", LEASE_DURATION + 5, "daemon two to take over")
        takeover = time.monotonic() - killed_at
        wait_for(lambda: all(finished(get_rollout(api, n).get("status") or {}) for n in NAMES), 60,
                 "the rollouts to finish under the new leader")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)

    assert takeover <= LEASE_DURATION + 2 * RETRY, f"takeover took {takeover:.2f}s ({took:.2f}s after the check began)"
    requests = fake.control("requests", method="GET")["requests"]
    writes = rollout_writes(requests)
    by_one = [w for w in writes if w[1] == "rollout-analyzer/one"]
    by_two = [w for w in writes if w[1] == "rollout-analyzer/two"]
    assert by_one and by_two, "both daemons should have led at some point"
    test_client = {w[1] for w in writes if not w[1].startswith("rollout-analyzer/")}
    assert len(test_client) <= 1  # this test's own creates (the client's default User-Agent)
    # The standby wrote nothing while the first daemon led, and nothing before the kill.
    assert min(i for i, _, _ in by_two) > max(i for i, _, _ in by_one)
    assert min(i for i, _, _ in by_two) >= before_kill

    for name in NAMES:
        st = get_rollout(api, name)["status"]
        assert st["phase"] == ("Degraded" if name == "lbad" else "Healthy"), (name, st.get("message"))
        vs_versions = [e["object"] for e in fake.audit() if e["name"] == f"vs-{name}"]
        weights = [canary_weight(v) for v in vs_versions]
        assert set(weights) <= PLAN_WEIGHTS
        assert weights[-1] == (0 if name == "lbad" else 100)
