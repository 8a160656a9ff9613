"""Judging data backfilled into a REAL Prometheus (Debian's package, promtool backfill).

Istio-style series per arm: two pods each, counters that already ran before the analysis start
(so "since the start" must subtract the value at the start), a pod that restarts halfway, and
workload names that need escaping in PromQL.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_judge_series import judge_cmd

from analyzer.core.stats import Decision, judge
from analyzer.judge.config import parse_config
from analyzer.judge.live import cumulative_at, fetch_steps, lit, parse_time, rx_any, with_arm
from analyzer.judge.simulate import ISTIO_BOUNDS, Scenario, SimData, simulate
from analyzer.localprom import LocalPrometheus

EPOCH = 1704067200  # 2024-01-01T00:00:00Z
START = EPOCH + 300  # the analysis starts 5 minutes into the data
SCRAPE = 15
HORIZON = 1800
BAD = 'model "v2"\\canary'  # a quote and a backslash: must be escaped in PromQL
WORKLOADS = {BAD: (Scenario(canary_rps=10, error_ratio=5), 1), "good-canary": (Scenario(canary_rps=10), 2),
             "idle-canary": (Scenario(canary_rps=0, baseline_rps=10), 3), "stable": (Scenario(canary_rps=10), 4)}
PRE = 5000  # requests each pod served before the analysis started


def _om(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _series(name: str, labels: str, values: np.ndarray, times: np.ndarray) -> list[str]:
    return [f"{name}{{{labels}}} {v:.0f} {ts}" for v, ts in zip(values, times, strict=True)]


def openmetrics() -> tuple[str, dict[str, float]]:
    """The backfill text, and the true canary/stable request counts since START."""
    rel = np.arange(-300, HORIZON + 1, SCRAPE)  # scrape times relative to START
    requests: list[str] = []
    buckets: list[str] = []
    truth: dict[str, float] = {}
    for workload, (scenario, seed) in WORKLOADS.items():
        d: SimData = simulate(scenario, 1, seed)
        step_t = np.r_[0.0, d.t]

        def cum(per_step: np.ndarray, _t: np.ndarray = step_t) -> np.ndarray:
            running = np.concatenate([np.zeros((1,) + per_step.shape[1:]), np.cumsum(per_step, axis=0)])
            return running[np.searchsorted(_t, np.maximum(rel, 0), side="right") - 1]

        n, x, h = cum(d.nc[0]), cum(d.xc[0]), cum(np.cumsum(d.hc[0], axis=1))
        truth[workload] = float(n[-1])
        for pod, share in (("a", 0.5), ("b", 0.5)):
            labels = f'destination_workload="{_om(workload)}",pod="{pod}"'
            pod_n, pod_x, pod_h = np.floor(n * share), np.floor(x * share), np.floor(h * share)
            pre = np.full(len(rel), PRE)
            if pod == "b" and workload in (BAD, "good-canary"):  # restarts at 900 s: counters from 0
                after = rel >= 900
                cut = np.searchsorted(rel, 900) - 1
                pod_n[after] -= pod_n[cut]
                pod_x[after] -= pod_x[cut]
                pod_h[after] -= pod_h[cut]
                pre[after] = 0
            requests += _series("istio_requests_total", labels + ',response_code="200"', pre + pod_n - pod_x, rel + START)
            requests += _series("istio_requests_total", labels + ',response_code="503"', pod_x, rel + START)
            for k, bound in enumerate(ISTIO_BOUNDS):
                le = "+Inf" if math.isinf(bound) else f"{bound * 1000:g}"  # Envoy spells ms bounds
                buckets += _series("istio_request_duration_milliseconds_bucket", f'{labels},le="{le}"',
                                   pre + pod_h[:, k], rel + START)
    text = ("# TYPE istio_requests counter\n" + "\n".join(requests)
            + "\n# TYPE istio_request_duration_milliseconds histogram\n" + "\n".join(buckets) + "\n# EOF\n")
    return text, truth


@pytest.fixture(scope="module")
def prom(require_prometheus: None) -> Iterator[tuple[LocalPrometheus, dict[str, float]]]:
    text, truth = openmetrics()
    with LocalPrometheus(openmetrics=text) as server:
        yield server, truth


def config(canary: str) -> dict[str, object]:
    return {
        "horizon": HORIZON, "step": f"{SCRAPE}s",
        "canary": {"destination_workload": canary}, "baseline": {"destination_workload": "stable"},
        "metrics": [
            {"name": "errors", "type": "error-rate", "requests": "istio_requests_total",
             "errors": 'istio_requests_total{response_code=~"5.."}'},
            {"name": "latency", "type": "latency", "buckets": "istio_request_duration_milliseconds_bucket",
             "unit": "ms"},
        ],
    }


@pytest.mark.prometheus
def test_regression_is_caught(prom: tuple[LocalPrometheus, dict[str, float]]) -> None:
    server, _ = prom
    cfg = parse_config(config(BAD))
    steps, _ = fetch_steps(cfg, server.url, START, START + HORIZON)
    verdict = judge(steps, cfg.spec)
    assert verdict.decision is Decision.FAIL and verdict.metric == "errors"
    assert verdict.decided_at is not None and verdict.decided_at < 600


@pytest.mark.prometheus
def test_healthy_canary_is_not_rolled_back_and_counts_are_since_the_start(
        prom: tuple[LocalPrometheus, dict[str, float]]) -> None:
    server, truth = prom
    cfg = parse_config(config("good-canary"))
    steps, _ = fetch_steps(cfg, server.url, START, START + HORIZON)
    # Pre-start counts are not counted; the restarted pod loses at most one scrape's requests.
    assert steps.baseline.requests.sum() == pytest.approx(truth["stable"], abs=2)
    assert truth["good-canary"] - 200 <= steps.canary.requests.sum() <= truth["good-canary"] + 2
    assert steps.view("latency").bounds is not None and len(steps.view("latency").bounds) == len(ISTIO_BOUNDS)
    verdict = judge(steps, cfg.spec)
    assert verdict.decision is Decision.PASS, verdict.reasons


@pytest.mark.prometheus
def test_canary_without_traffic_is_inconclusive(prom: tuple[LocalPrometheus, dict[str, float]]) -> None:
    server, _ = prom
    cfg = parse_config(config("idle-canary"))
    verdict = judge(fetch_steps(cfg, server.url, START, START + HORIZON)[0], cfg.spec)
    assert verdict.decision is Decision.INCONCLUSIVE and "no traffic" in verdict.reasons[0]


@pytest.mark.prometheus
def test_cli_judges_live(prom: tuple[LocalPrometheus, dict[str, float]], tmp_path: Path) -> None:
    server, _ = prom
    path = tmp_path / "live.json"  # JSON is YAML
    path.write_text(json.dumps(config(BAD)))
    done = subprocess.run([*judge_cmd(), "--config", str(path), "--prometheus", server.url,
                           "--since", str(START), "--now", str(START + HORIZON), "--json", "--run", "r1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["decision"] == "fail"
    path.write_text(json.dumps(config("idle-canary")))
    done = subprocess.run([*judge_cmd(), "--config", str(path), "--prometheus", server.url,
                           "--since", "2024-01-01T00:05:00Z", "--now", str(START + HORIZON)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "inconclusive" in done.stdout


def test_cli_live_needs_selectors_and_a_reachable_server(tmp_path: Path) -> None:
    path = tmp_path / "replay-only.yaml"
    path.write_text("metrics:\n  - {name: errors, type: error-rate}\n")
    done = subprocess.run([*judge_cmd(), "--config", str(path), "--prometheus", "http://127.0.0.1:9",
                           "--since", "30m"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "metrics[0].requests: required with --prometheus" in done.stderr
    path.write_text(json.dumps(config("x")))
    done = subprocess.run([*judge_cmd(), "--config", str(path), "--prometheus", "http://127.0.0.1:9",
                           "--since", "30m"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "cannot query prometheus" in done.stderr and "Traceback" not in done.stderr


def test_label_values_are_escaped() -> None:
    assert lit('a"b\\c.d') == '"a\\"b\\\\c.d"'
    assert rx_any(["x+y(1)", "a.b"]) == '"x\\\\+y\\\\(1\\\\)|a\\\\.b"'
    assert with_arm('m{a="b"}', {"pod": ("p-1", "p-2")}) == 'm{a="b", pod=~"p\\\\-1|p\\\\-2"}'
    assert with_arm("m", {"w": 'q"'}) == 'm{w="q\\""}'
    assert with_arm("m{}", {"w": "v"}) == 'm{w="v"}'


def test_exact_increase_handles_resets_and_late_series() -> None:
    samples = [(0.0, 100.0), (10.0, 110.0), (20.0, 5.0), (30.0, 15.0)]  # restart between 10 and 20
    got = cumulative_at(samples, 5.0, np.array([10.0, 20.0, 30.0]))
    assert list(got) == [10.0, 15.0, 25.0]
    born_late = [(20.0, 3.0), (30.0, 4.0)]  # no sample before the start: counts from 0
    assert list(cumulative_at(born_late, 5.0, np.array([10.0, 30.0]))) == [0.0, 4.0]


def test_times() -> None:
    assert parse_time("1704067200", None, "--since") == 1704067200
    assert parse_time("2024-01-01T00:00:00Z", None, "--since") == 1704067200
    assert parse_time("30m", 1704067200.0, "--since") == 1704067200 - 1800
    with pytest.raises(ValueError, match="--since: expected unix seconds"):
        parse_time("yesterday", None, "--since")
