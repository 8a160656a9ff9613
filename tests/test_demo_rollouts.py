"""Issue 8: both demo rollouts, end to end, with nothing faked: real HAProxy, real Prometheus,
two real model servers and the product's own controller over the local store.

Checks the promotion, the rollback with traffic back on v1, and that the split HAProxy applied
matches the weights that were set, measured from the model servers' own request counters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli

from analyzer.demo.rollout_demo import SCENARIOS, Timing, run_scenario
from analyzer.local.events import events_path, read_events
from analyzer.localhaproxy import haproxy_available

pytestmark = [pytest.mark.usefixtures("require_prometheus"),
              pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed (make test installs it)")]
FAST = Timing(judge_horizon=20, judge_interval=2, rps=200.0, min_samples=80)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from rich.console import Console

    workdir = tmp_path_factory.mktemp("demo")
    console = Console(file=open(workdir / "console.txt", "w"))  # noqa: SIM115 - closed with the test session
    out = {}
    for s in SCENARIOS:
        (workdir / s.name).mkdir()
        out[s.name] = run_scenario(s, workdir, console, FAST, live_view=False)
    out["workdir"] = workdir
    return out


def test_good_v2_is_promoted_and_gets_all_traffic(outcomes: dict[str, Any]) -> None:
    o = outcomes["good-v2"]
    assert o.phase == "Healthy", o.message
    assert o.final_weight == 100
    store = outcomes["workdir"] / "good-v2" / "store"
    status = json.loads((store / "demo" / "good-v2.json").read_text())["status"]
    runs = status["analysisRuns"]
    assert [r["phase"] for r in runs] == ["Successful"] * 3  # the judge passed at 5, 25 and 50 %
    reasons = [e["reason"] for e in read_events(events_path(store, "demo", "good-v2"))]
    assert reasons[-1] == "RolloutCompleted"


def test_bad_v2_is_rolled_back_by_the_judge_and_traffic_is_back_on_v1(outcomes: dict[str, Any]) -> None:
    o = outcomes["bad-v2"]
    assert o.phase == "Degraded", o.message
    assert "judge" in o.message and "Failed" in o.message
    assert o.final_weight == 0  # HAProxy read back: all traffic on v1
    assert o.judge_reason.startswith("roll back at t="), o.judge_reason  # the judge's words, shown to the user
    assert o.judge_reason in o.message  # ... and carried into the rollout's status message (events, Slack, CLI)
    store = outcomes["workdir"] / "bad-v2" / "store"
    status = json.loads((store / "demo" / "bad-v2.json").read_text())["status"]
    failed = status["analysisRuns"][0]
    assert failed["phase"] == "Failed" and failed["stepIndex"] == 2  # caught at the first weighted step
    verdict = json.loads(failed["status"]["metricResults"][0]["measurements"][-1]["value"])
    assert verdict["verdict"] == "fail"
    assert verdict["metric"] in {m["name"] for m in verdict["metrics"] if m["status"] == "regression"}
    assert status["weights"]["verified"] == 0


def test_haproxy_split_matches_the_set_weights(outcomes: dict[str, Any]) -> None:
    checks = outcomes["good-v2"].splits
    weights = {c.weight for c in checks}
    assert {5, 25, 50}.issubset(weights), checks
    for c in checks:
        assert c.ok, f"weight {c.weight}: canary served {c.canary_share:.1f} % of {c.requests} (sd {c.sigma:.1f})"


def test_reports_are_written_with_their_plots(outcomes: dict[str, Any]) -> None:
    for name in ("good-v2", "bad-v2"):
        report = outcomes[name].report
        assert report is not None and report.exists()
        html = report.read_text()
        for png in ("weights.png", "error_rate.png", "latency_p99.png"):
            assert png in html
            assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyzer_demo_refuses_an_unknown_scenario_cleanly() -> None:
    r = run_cli("demo", "--scenario", "nope")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope" in r.stderr


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    """Interrupt `analyzer demo` mid-rollout: it exits 130 and every port it opened is closed
    (model servers, HAProxy, Prometheus)."""
    import re
    import signal
    import socket
    import subprocess
    import time

    from cli_helpers import REPO, analyzer_cmd

    proc = subprocess.Popen([*analyzer_cmd(), "demo", "--no-live", "--scenario", "good-v2", "--out", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    ports: list[int] = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "model servers" in line:
            ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
            break
        assert time.monotonic() < deadline
    assert len(ports) == 4, ports
    time.sleep(3)  # mid-rollout
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after the demo stopped"
