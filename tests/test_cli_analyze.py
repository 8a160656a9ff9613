"""`analyzer analyze` live against a real Prometheus scraping a real workload exporter.

The shipped templates run unchanged; ``--speed 60`` divides their 1m interval so a run of five
measurements takes seconds, and ``window=10s`` keeps the rate window inside the test's life.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from cli_helpers import REPO, analyzer_cmd, run_cli

from analyzer.demo.workload import Profile, Workload
from analyzer.localprom import LocalPrometheus, free_port

FAST = ("--speed", "60", "--arg", "window=10s")


@pytest.fixture(scope="module")
def live(require_prometheus: None) -> Iterator[LocalPrometheus]:
    versions = {
        "v1": Profile(rps=80, error_rate=0.0, latency=0.05),   # healthy
        "v2": Profile(rps=80, error_rate=0.25, latency=0.9),    # failing: errors and slow
        "idle": Profile(rps=0),                                 # series exist, no traffic (0/0)
    }
    with Workload(versions=versions, app="inference", seed=3) as w, \
            LocalPrometheus(scrape_targets=[w.target]) as prom:
        prom.wait_for('sum(rate(inference_requests_total{version="v2"}[10s])) > 0', timeout=30)
        yield prom


def analyze(prom: LocalPrometheus, template: str, version: str, *extra: str) -> tuple[int, dict]:
    r = run_cli("analyze", f"templates/{template}.yaml", "--prometheus", prom.url,
                "--arg", f"canary-version={version}", *FAST, *extra, "--json")
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout)


def test_success_rate_healthy_canary_is_successful(live: LocalPrometheus) -> None:
    code, status = analyze(live, "success-rate", "v1")
    assert (code, status["phase"]) == (0, "Successful")
    metric = status["metricResults"][0]
    assert metric["count"] == 5 and metric["successful"] == 5
    assert metric["measurements"][-1]["value"] == "[1]"


def test_success_rate_failing_canary_fails(live: LocalPrometheus) -> None:
    code, status = analyze(live, "success-rate", "v2")
    assert (code, status["phase"]) == (1, "Failed")
    assert status["message"] == 'Metric "success-rate" assessed Failed due to failed (2) > failureLimit (1)'
    assert all(float(m["value"].strip("[]")) < 0.99 for m in status["metricResults"][0]["measurements"])


@pytest.mark.parametrize("version", ["idle", "v9"])
def test_success_rate_without_data_is_inconclusive(live: LocalPrometheus, version: str) -> None:
    # idle: 0/0 = NaN; v9: no series at all, an empty vector. Neither may pass.
    code, status = analyze(live, "success-rate", version)
    assert (code, status["phase"]) == (3, "Inconclusive")
    values = {m["value"] for m in status["metricResults"][0]["measurements"]}
    assert values == ({"[NaN]"} if version == "idle" else {"[]"})


def test_latency_check_passes_fast_and_fails_slow_canary(live: LocalPrometheus) -> None:
    assert analyze(live, "latency-check", "v1")[0] == 0
    code, status = analyze(live, "latency-check", "v2")
    assert (code, status["phase"]) == (1, "Failed")


def test_prometheus_down_is_error_after_five_consecutive_errors(require_prometheus: None) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run_cli("analyze", "templates/success-rate.yaml", "--prometheus", url, "--arg", "canary-version=v1",
                "--speed", "60", "--json")
    status = json.loads(r.stdout)
    assert (r.returncode, status["phase"]) == (1, "Error")
    assert "consecutiveErrors (5) > consecutiveErrorLimit (4)" in status["message"]
    assert f"cannot reach prometheus at {url}" in status["message"]


def test_ctrl_c_terminates_the_run_like_spec_terminate(live: LocalPrometheus, tmp_path) -> None:
    # An endless metric (interval, no count): only termination ends it.
    template = tmp_path / "endless.yaml"
    template.write_text((REPO / "templates" / "success-rate.yaml").read_text().replace("count: 5", "count: 0"))
    proc = subprocess.Popen([*analyzer_cmd(), "analyze", str(template), "--prometheus", live.url,
                             "--arg", "canary-version=v1", *FAST, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "success-rate: Successful" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    status = json.loads(out)
    assert proc.returncode == 0, err
    assert (status["phase"], status["message"]) == ("Successful", "Run Terminated")
    assert status["metricResults"][0]["phase"] == "Successful"


def test_bad_prometheus_url_and_missing_arg_are_bad_input() -> None:
    r = run_cli("analyze", "templates/success-rate.yaml", "--prometheus", "localhost:9090")
    assert r.returncode == 2 and "--prometheus: expected an http(s) URL" in r.stderr
    r = run_cli("analyze", "templates/success-rate.yaml", "--prometheus", "http://127.0.0.1:1")
    assert r.returncode == 2 and "no value for canary-version" in r.stderr


def test_web_provider_template_runs_live_against_a_real_http_server(tmp_path) -> None:
    from web_fixtures import Reply, StubServer

    template = tmp_path / "web.yaml"
    with StubServer() as server:
        server.routes["/verdict"] = Reply(body='{"status": {"successRate": 0.997, "phase": "ok"}}',
                                          headers={"Content-Type": "application/json"})
        template.write_text(f"""\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: web}}
spec:
  args: [{{name: token, value: s3cr3t}}]
  metrics:
    - name: judge
      interval: 1s
      count: 2
      successCondition: result.successRate >= 0.99 && result.phase == "ok"
      provider:
        web:
          url: {server.url("/verdict")}
          headers: [{{key: Authorization, value: "Bearer {{{{args.token}}}}"}}]
          jsonPath: "{{$.status}}"
""")
        r = run_cli("analyze", str(template), "--json")
        assert [q.headers.get("authorization") for q in server.requests] == ["Bearer s3cr3t"] * 2
    status = json.loads(r.stdout)
    assert (r.returncode, status["phase"]) == (0, "Successful"), r.stderr
    assert status["metricResults"][0]["measurements"][0]["value"] == '{"phase":"ok","successRate":0.997}'


def test_unsupported_provider_is_an_error_measurement_not_a_crash(tmp_path) -> None:
    template = tmp_path / "job.yaml"
    template.write_text("""\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: job}
spec:
  metrics:
    - name: smoke
      consecutiveErrorLimit: 0
      provider:
        job:
          spec: {template: {spec: {containers: [{name: c, image: alpine}], restartPolicy: Never}}}
""")
    r = run_cli("analyze", str(template), "--json")
    status = json.loads(r.stdout)
    assert (r.returncode, status["phase"]) == (1, "Error")
    assert 'provider "job" is not supported by rollout-analyzer' in status["message"]
    assert "Traceback" not in r.stderr
