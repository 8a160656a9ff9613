"""Acceptance: templates/canary-judge.yaml, unchanged, run by our Argo-compatible engine (the
`analyzer analyze` command, web provider) against the live service (uvicorn on loopback) backed by
a real Prometheus with backfilled data.

The service replays the backfilled history on a clock that runs as fast as the run (--speed):
one template minute is one virtual minute of data, so the judge sees the data grow measurement by
measurement exactly as it would in a cluster.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import REPO, run_cli
from test_server_app import TOKEN, running, settings
from test_server_verdict import BAD, GOOD, HORIZON, IDLE, STABLE, START, judge_prom, policies_dir

from analyzer.localprom import LocalPrometheus
from analyzer.server.app import build_app

__all__ = ["judge_prom", "policies_dir"]

SPEED = 600  # the template's 1m interval becomes 0.1 s
TEMPLATE = str(REPO / "templates" / "canary-judge.yaml")


class ReplayClock:
    """Virtual time START + 30 s at the first request, then SPEED virtual seconds per real second."""

    def __init__(self) -> None:
        self.began: float | None = None
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            if self.began is None:
                self.began = time.monotonic()
            return START + 30 + (time.monotonic() - self.began) * SPEED


@pytest.fixture
def replay_service(judge_prom: LocalPrometheus, policies_dir: Path) -> Iterator[str]:
    app = build_app(settings(judge_prom.url, policies_dir, clock=ReplayClock(), cache_ttl=0))
    with running(app) as url:
        yield url


def analyze(url: str, canary: str, start: str = str(START)) -> tuple[int, dict[str, Any]]:
    done = run_cli("analyze", TEMPLATE, "--speed", str(SPEED), "--json",
                   "--arg", f"service-url={url}", "--arg", f"token={TOKEN}", "--arg", "policy=judge-test",
                   "--arg", f"canary-hash={canary}", "--arg", f"stable-hash={STABLE}", "--arg", f"start={start}",
                   timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def verdicts(status: dict[str, Any]) -> list[str]:
    (metric,) = status["metricResults"]
    return [json.loads(m["value"])["verdict"] for m in metric["measurements"]]


@pytest.mark.prometheus
def test_healthy_canary_ends_successful_at_the_horizon(replay_service: str) -> None:
    code, status = analyze(replay_service, GOOD)
    assert code == 0 and status["phase"] == "Successful", status
    seen = verdicts(status)
    # "No decision yet" until the policy's 10 minute horizon, then the pass completes the metric.
    assert seen[-1] == "pass" and seen[0] == "inconclusive" and set(seen[:-1]) == {"inconclusive"}
    (metric,) = status["metricResults"]
    docs = [json.loads(m["value"]) for m in metric["measurements"]]
    assert len(docs) >= 2 and all(d["elapsed"] < HORIZON for d in docs[:-1]) and docs[-1]["elapsed"] == HORIZON


@pytest.mark.prometheus
def test_regressed_canary_ends_failed(replay_service: str) -> None:
    code, status = analyze(replay_service, BAD)
    assert code == 1 and status["phase"] == "Failed", status
    assert verdicts(status)[-1] == "fail"
    assert len(verdicts(status)) <= 8  # long before the horizon


@pytest.mark.prometheus
def test_canary_without_traffic_ends_inconclusive(replay_service: str) -> None:
    code, status = analyze(replay_service, IDLE)
    assert code == 3 and status["phase"] == "Inconclusive", status
    (metric,) = status["metricResults"]
    assert metric["count"] == 40 and metric["inconclusive"] == 40  # Argo keeps only the last 10 measurements
    assert set(verdicts(status)) == {"inconclusive"}


@pytest.mark.prometheus
def test_start_left_empty_is_found_by_the_service(replay_service: str) -> None:
    code, status = analyze(replay_service, GOOD, start="")
    assert code == 0 and status["phase"] == "Successful", status
    (metric,) = status["metricResults"]
    assert json.loads(metric["measurements"][-1]["value"])["start"].startswith("2024-01-01T00:13:")
