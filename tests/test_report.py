"""``analyzer report`` against a real Prometheus holding backfilled model-server metrics (the demo's
names and labels) and a rollout kept in a real local store with its events file."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from PIL import Image
from prom_fixtures import EPOCH

from analyzer.demo.model_server import BUCKETS
from analyzer.local import LocalRolloutStore, LogEvents, events_path, read_events
from analyzer.localprom import LocalPrometheus
from analyzer.report import Series, write_report
from analyzer.report.history import build_history
from analyzer.report.metrics import fetch_series

T0 = EPOCH + 60  # the rollout starts a minute into the backfilled history
BAD_FROM = 150  # seconds after T0: the canary starts failing 6 % and slowing down
DURATION = 600
SPACING = 5


def _cdf(x: float, median: float, sigma: float = 0.3) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


def model_server_history() -> str:
    """OpenMetrics for promtool: http_requests_total{app,version,code} and the latency
    histogram, as analyzer.demo.model_server exports them. v1 (baseline): 20 req/s, 1 % errors,
    median 10 ms; v2 (canary): 10 req/s, 1 % errors then 6 %, median 10 ms then 16 ms."""
    times = list(range(EPOCH, EPOCH + DURATION + 120, SPACING))
    counters: list[str] = ["# TYPE http_requests counter"]
    hist: list[str] = ["# TYPE http_request_duration_seconds histogram"]
    for version, rps in (("v1", 20), ("v2", 10)):
        ok = err = 0.0
        buckets = [0.0] * len(BUCKETS)
        total = total_sum = 0.0
        rows: dict[str, list[str]] = {"200": [], "500": []}
        hrows: list[list[str]] = [[] for _ in range(len(BUCKETS) + 3)]
        for ts in times:
            bad = version == "v2" and ts >= T0 + BAD_FROM
            n = rps * SPACING
            err_rate, median = (0.06, 0.016) if bad else (0.01, 0.010)
            err += n * err_rate
            ok += n * (1 - err_rate)
            for i, le in enumerate(BUCKETS):
                buckets[i] += round(n * _cdf(le, median))
            total += n
            total_sum += n * median
            labels = f'app="inference",version="{version}"'
            rows["200"].append(f'http_requests_total{{{labels},code="200"}} {round(ok)} {ts}')
            rows["500"].append(f'http_requests_total{{{labels},code="500"}} {round(err)} {ts}')
            for i, le in enumerate(BUCKETS):
                hrows[i].append(f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {buckets[i]:.0f} {ts}')
            hrows[-3].append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total:.0f} {ts}')
            hrows[-2].append(f"http_request_duration_seconds_count{{{labels}}} {total:.0f} {ts}")
            hrows[-1].append(f"http_request_duration_seconds_sum{{{labels}}} {total_sum:.3f} {ts}")
        counters += rows["200"] + rows["500"]
        for r in hrows:
            hist += r
    return "\n".join(counters + hist) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(require_prometheus: None) -> Iterator[LocalPrometheus]:
    with LocalPrometheus(openmetrics=model_server_history()) as prom:
        yield prom


MANIFEST = {
    "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
    "metadata": {"name": "demo-bad", "namespace": "default"},
    "spec": {
        "trafficRouting": {"haproxy": {"socket": "/tmp/admin.sock", "headerMap": "/tmp/routes.map"}},
        "steps": [{"setWeight": 5}, {"analysis": {"templates": [{"templateName": "judge"}]}},
                  {"setWeight": 25}, {"analysis": {"templates": [{"templateName": "judge"}]}},
                  {"setWeight": 50}, {"setWeight": 100}],
    },
}


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _measurement(offset: float, value: str, phase: str) -> dict[str, Any]:
    return {"phase": phase, "value": value, "startedAt": _iso(offset), "finishedAt": _iso(offset), "message": ""}


RUN_OK = "demo-bad-0c1d2e3f-1-1"
RUN_FAILED = "demo-bad-0c1d2e3f-1-3"
FINAL_STATUS = {
    "phase": "Degraded", "message": "RolloutAborted: Step-based analysis phase failed", "currentStepIndex": 0,
    "updateHash": "0c1d2e3f44556677", "attempt": 1, "abort": True, "abortedAt": _iso(300),
    "abortMessage": "Step-based analysis phase failed: errors: canary 6.0 % vs baseline 1.0 %",
    "weights": {"desired": 0, "verified": 0, "verifiedAt": _iso(302)},
    "analysisRuns": [
        {"name": RUN_OK, "kind": "Step", "stepIndex": 1, "phase": "Successful", "message": "",
         "startedAt": _iso(62), "completedAt": _iso(120),
         "status": {"phase": "Successful", "metricResults": [
             {"name": "errors", "phase": "Successful", "count": 2, "successful": 2, "failed": 0, "inconclusive": 0,
              "error": 0, "measurements": [_measurement(90, "pass", "Successful"),
                                           _measurement(120, "pass", "Successful")]}]}},
        {"name": RUN_FAILED, "kind": "Step", "stepIndex": 3, "phase": "Failed", "message": "errors: canary worse",
         "startedAt": _iso(182), "completedAt": _iso(300),
         "status": {"phase": "Failed", "metricResults": [
             {"name": "errors", "phase": "Failed", "count": 3, "successful": 1, "failed": 1, "inconclusive": 1,
              "error": 0, "measurements": [_measurement(210, "inconclusive", "Inconclusive"),
                                           _measurement(240, "pass", "Successful"),
                                           _measurement(300, "fail <script>", "Failed")]},
             {"name": "latency", "phase": "Successful", "count": 1, "successful": 1, "failed": 0,
              "inconclusive": 0, "error": 0, "measurements": [_measurement(300, "pass", "Successful")]}]}},
    ],
}

# (offset, reason, message, step, desired, verified, abort)
TIMELINE = [
    (0, "RolloutUpdated", "starting update 0c1d2e3f", 0, 0, 0, False),
    (2, "RolloutStepCompleted", "Rollout step 1/6 completed (setWeight: 5)", 1, 5, 5, False),
    (2, "AnalysisRunCreated", f"analysis run {RUN_OK} (judge)", 1, 5, 5, False),
    (120, "AnalysisRunSuccessful", f"analysis run {RUN_OK} is Successful", 2, 25, 5, False),
    (120, "RolloutStepCompleted", "Rollout step 2/6 completed (analysis: judge)", 2, 25, 5, False),
    (122, "RolloutStepCompleted", "Rollout step 3/6 completed (setWeight: 25)", 3, 25, 25, False),
    (300, "AnalysisRunFailed", f"analysis run {RUN_FAILED} is Failed: errors: canary worse", 3, 25, 25, False),
    (300, "RolloutAborted", "Rollout aborted update 0c1d2e3f: Step-based analysis phase failed", 0, 0, 0, True),
]


@pytest.fixture
def stored(tmp_path: Path) -> tuple[LocalRolloutStore, dict[str, Any]]:
    store = LocalRolloutStore(tmp_path / "store")
    obj = store.apply(MANIFEST)
    clock_times = iter(datetime.fromtimestamp(T0 + t[0], UTC) for t in TIMELINE)
    sink = LogEvents(store.directory, clock=lambda: next(clock_times))
    for _, reason, message, step, desired, verified, abort in TIMELINE:
        snapshot = {**obj, "status": {"phase": "Degraded" if abort else "Progressing", "currentStepIndex": step,
                                      "abort": abort, "weights": {"desired": desired, "verified": verified}}}
        sink.emit(snapshot, reason, message, warning=abort or reason.endswith("Failed"))
    obj = store.update_status("default", "demo-bad", FINAL_STATUS, obj["metadata"]["resourceVersion"])
    return store, obj


def test_history_comes_from_the_events_file(stored: tuple[LocalRolloutStore, dict[str, Any]]) -> None:
    store, obj = stored
    h = build_history(obj, read_events(events_path(store.directory, "default", "demo-bad")))
    assert [(round(w.ts - T0), w.desired, w.verified) for w in h.weights] == [
        (0, 0, 0), (2, 5, 5), (120, 25, 5), (122, 25, 25), (300, 0, 0)]
    assert [round(b.ts - T0) for b in h.boundaries] == [2, 120, 122]
    assert h.decision is not None and h.decision.kind == "rolled back" and h.decision.ts == T0 + 300
    assert [(r.name, r.phase) for r in h.runs] == [(RUN_OK, "Successful"), (RUN_FAILED, "Failed")]
    assert h.runs[1].metrics[0].counts == "3 measured: 1 successful, 1 failed, 1 inconclusive"


def test_series_from_real_prometheus_show_the_regression(prometheus: LocalPrometheus) -> None:
    arms = {"canary": {"version": "v2"}, "baseline": {"version": "v1"}}
    s = fetch_series(prometheus.url, arms, T0, T0 + 400, step=10)
    assert s.problems == []

    def around(points: list[tuple[float, float]], lo: float, hi: float) -> float:
        vals = [v for t, v in points if T0 + lo <= t <= T0 + hi]
        assert vals, f"no points between +{lo} and +{hi}"
        return sum(vals) / len(vals)

    assert around(s.baseline_error_rate, 0, 400) == pytest.approx(0.01, abs=0.003)
    assert around(s.canary_error_rate, 40, 120) == pytest.approx(0.01, abs=0.005)
    assert around(s.canary_error_rate, 200, 400) == pytest.approx(0.06, abs=0.01)
    assert around(s.canary_p99, 200, 400) > 1.3 * around(s.baseline_p99, 200, 400)


def test_report_html_references_valid_pngs_and_the_verdicts(
        prometheus: LocalPrometheus, stored: tuple[LocalRolloutStore, dict[str, Any]], tmp_path: Path) -> None:
    store, obj = stored
    page = write_report(obj, read_events(events_path(store.directory, "default", "demo-bad")), prometheus.url,
                        tmp_path / "report")
    text = page.read_text()
    images = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(images) == ["error_rate.png", "latency_p99.png", "weights.png"]
    for name in images:
        with Image.open(page.parent / name) as im:
            im.verify()
            assert im.format == "PNG" and im.size[0] >= 600
    for run, phase in ((RUN_OK, "Successful"), (RUN_FAILED, "Failed")):
        assert re.search(rf"<td>{run}</td><td>step \d</td><td><span class=\"\w+\">{phase}</span>", text)
    assert "fail &lt;script&gt; (Failed)" in text and "<script>" not in text  # values are escaped
    assert 'class="bad">rolled back</span>' in text
    assert "no data" not in text and 'class="problems"' not in text  # Prometheus answered for both arms


def test_report_without_prometheus_still_has_weights_and_verdicts(
        stored: tuple[LocalRolloutStore, dict[str, Any]], tmp_path: Path) -> None:
    store, obj = stored
    page = write_report(obj, read_events(events_path(store.directory, "default", "demo-bad")),
                        Series(problems=["no metrics"]), tmp_path / "r")
    assert "no metrics" in page.read_text() and (tmp_path / "r" / "weights.png").stat().st_size > 1000


def test_report_command(prometheus: LocalPrometheus, stored: tuple[LocalRolloutStore, dict[str, Any]],
                        tmp_path: Path) -> None:
    store, _ = stored
    out = tmp_path / "cli-report"
    done = run_cli("report", "--store", str(store.directory), "--name", "demo-bad", "--prometheus", prometheus.url,
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "index.html")
    assert RUN_FAILED in (out / "index.html").read_text()
    missing = run_cli("report", "--store", str(store.directory), "--name", "nope", "--out", str(out))
    assert missing.returncode == 2 and "rollout default/nope not found" in missing.stderr
    store.path("default", "demo-bad").write_text("{")
    broken = run_cli("report", "--store", str(store.directory), "--name", "demo-bad", "--out", str(out))
    assert broken.returncode == 2 and "demo-bad.json: not valid JSON" in broken.stderr


def test_canary_line_ends_at_a_rollback_not_at_a_promotion() -> None:
    """After a rollback the canary serves nothing; its rate window would otherwise draw the last
    traffic it had as a flat live line up to the end of the plot."""
    from analyzer.report.history import DecisionPoint, History
    from analyzer.report.plots import canary_until_rollback

    points = [(100.0, 0.2), (110.0, 0.3), (120.0, 0.3), (130.0, 0.3)]
    rolled_back = History("ml", "inference", "Degraded", "", decision=DecisionPoint(115.0, "rolled back", "judge"))
    promoted = History("ml", "inference", "Healthy", "", decision=DecisionPoint(115.0, "promoted", ""))
    running = History("ml", "inference", "Progressing", "")
    assert canary_until_rollback(points, rolled_back) == points[:2]
    assert canary_until_rollback(points, promoted) == points
    assert canary_until_rollback(points, running) == points
