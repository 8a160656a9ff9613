"""compute_verdict against a REAL Prometheus holding backfilled per-pod counters and histograms.

The arms are Argo Rollouts pod-template hashes (label rollouts_pod_template_hash). Stable counters
ran long before the analysis start (so "since the start" must subtract their value at the
start); the canaries' pods came up two minutes before it. Also the shared fixtures of the other
test_server_* modules: the data, the policy directory, the Prometheus.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer.localprom import LocalPrometheus, free_port
from analyzer.server.verdict import (
    LiveError,
    PolicyBook,
    RequestError,
    compute_verdict,
    finite,
    parse_query,
    parse_request,
    strict_json,
)

EPOCH = 1704067200  # 2024-01-01T00:00:00Z
START = EPOCH + 900  # the analysis start
HORIZON = 600
SCRAPE = 15
STABLE, GOOD, BAD, IDLE = "5c4b7f9d8", "7d9f8b6c5", "6f8e9a1b2", "9a9a9a9a9"
CANARY_BORN = START - 120
BOUNDS = ("0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
PRE = 5000
POLICY = f"""
name: judge-test
alpha: 0.05
horizon: {HORIZON}s
step: {SCRAPE}s
canary: {{rollouts_pod_template_hash: placeholder-canary}}
baseline: {{rollouts_pod_template_hash: placeholder-stable}}
metrics:
  - name: errors
    type: error-rate
    requests: http_requests_total
    errors: http_requests_total{{status=~"5.."}}
    min_samples: 200
  - name: latency
    type: latency
    buckets: http_request_duration_seconds_bucket
    unit: s
    warmup: 1m
    min_samples: 200
"""


def _pod(rng: np.random.Generator, times: np.ndarray, born: float, rps: float, error_rate: float,
         pre: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (2xx, 5xx, buckets[K]) counters of one pod at each scrape time."""
    ok, bad = np.zeros(len(times)), np.zeros(len(times))
    hist = np.zeros((len(times), len(BOUNDS)))
    edges = np.array([float(b) for b in BOUNDS])
    for i in range(1, len(times)):
        n = rng.poisson(rps * SCRAPE) if times[i] > born else 0
        errors = rng.binomial(n, error_rate)
        latency = rng.lognormal(math.log(0.1), 0.5, n - errors)
        ok[i], bad[i] = ok[i - 1] + n - errors, bad[i - 1] + errors
        hist[i] = hist[i - 1] + np.array([(latency <= e).sum() for e in edges])
    return ok + pre, bad, hist + pre


def openmetrics() -> str:
    rng = np.random.default_rng(11)
    times = np.arange(START - 600, START + 2 * HORIZON + 1, SCRAPE, dtype=float)
    pods = [(STABLE, "stable-a", -math.inf, 20, 0.005, PRE), (STABLE, "stable-b", -math.inf, 20, 0.005, PRE),
            (GOOD, "good-a", CANARY_BORN, 10, 0.005, 0), (BAD, "bad-a", CANARY_BORN, 10, 0.1, 0),
            (IDLE, "idle-a", CANARY_BORN, 0, 0.0, 0)]
    requests, buckets = [], []
    for arm, pod, born, rps, error_rate, pre in pods:
        ok, bad, hist = _pod(rng, times, born, rps, error_rate, pre)
        alive = times >= born
        labels = f'rollouts_pod_template_hash="{arm}",pod="{pod}"'
        for status, values in (("200", ok), ("500", bad)):
            requests += [f'http_requests_total{{{labels},status="{status}"}} {v:.0f} {t:.0f}'
                         for v, t in zip(values[alive], times[alive], strict=True)]
        for k, le in enumerate(BOUNDS):
            buckets += [f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {v:.0f} {t:.0f}'
                        for v, t in zip(hist[alive, k], times[alive], strict=True)]
    return ("# TYPE http_requests counter\n" + "\n".join(requests)
            + "\n# TYPE http_request_duration_seconds histogram\n" + "\n".join(buckets) + "\n# EOF\n")


@pytest.fixture(scope="session")
def judge_prom(require_prometheus: None) -> Iterator[LocalPrometheus]:
    with LocalPrometheus(openmetrics=openmetrics()) as server:
        yield server


@pytest.fixture(scope="session")
def policies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("policies")
    (folder / "judge-test.yaml").write_text(POLICY)
    (folder / "broken.yaml").write_text("metrics: [{name: x, type: nope}]\n")
    return folder


def ask(canary: str, start: Any = START, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"policy": "judge-test", "canaryHash": canary, "stableHash": STABLE, **extra}
    if start is not None:
        body["start"] = start
    return body


def no_bare_constants(text: str) -> Any:
    """Parse as strict JSON: a bare NaN, Infinity or -Infinity token fails the test."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"bare {name} in a JSON document")
    return json.loads(text, parse_constant=refuse)  # Go's encoding/json accepts exactly this


@pytest.mark.prometheus
def test_healthy_canary_passes_at_the_horizon_and_not_before(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    book = PolicyBook(policies_dir)
    request = parse_request(ask(GOOD))
    early = compute_verdict(request, judge_prom.url, START + 300, book)
    assert early["verdict"] == "inconclusive" and early["final"] is False
    assert early["reason"].startswith("no decision yet")
    doc = compute_verdict(request, judge_prom.url, START + 2 * HORIZON, book)
    assert doc["verdict"] == "pass" and doc["final"] is True, doc["reasons"]
    assert doc["evaluatedAt"] == "2024-01-01T00:25:00.000Z"  # capped at start + horizon
    assert doc["start"] == "2024-01-01T00:15:00.000Z" and doc["policy"] == "judge-test"
    # Counts since the start only: ~10 rps for 600 s; the stable pods' pre-start 5000 are not counted.
    assert 5400 < doc["samples"]["canary"] < 6600 and 22000 < doc["samples"]["baseline"] < 26000
    assert [m["name"] for m in doc["metrics"]] == ["errors", "latency"]
    assert all(m["samples"]["canary"] > 200 and m["status"] == "no-regression" for m in doc["metrics"])
    assert doc["selection"]["canary"] == {"rollouts_pod_template_hash": GOOD}
    no_bare_constants(strict_json(doc).decode())


@pytest.mark.prometheus
def test_regressed_canary_fails_early(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    doc = compute_verdict(parse_request(ask(BAD)), judge_prom.url, START + 300, PolicyBook(policies_dir))
    assert doc["verdict"] == "fail" and doc["metric"] == "errors" and doc["final"] is True
    assert doc["decidedAt"] is not None and doc["decidedAt"] <= 300
    assert doc["metrics"][0]["status"] == "regression"


@pytest.mark.prometheus
def test_canary_without_traffic_is_inconclusive_and_strict_json(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    # The data produces NaN: the idle canary's error ratio is 0/0 in Prometheus.
    ratio = judge_prom.query(f'sum(increase(http_requests_total{{status="500",rollouts_pod_template_hash="{IDLE}"}}[5m]))'
                             f' / sum(increase(http_requests_total{{rollouts_pod_template_hash="{IDLE}"}}[5m]))',
                             at=START + 300)
    assert ratio["result"][0]["value"][1] == "NaN"
    book = PolicyBook(policies_dir)
    request = parse_request(ask(IDLE))
    for now in (START + 300, START + 2 * HORIZON):
        doc = compute_verdict(request, judge_prom.url, now, book)
        assert doc["verdict"] == "inconclusive" and "no traffic" in doc["reason"]
        text = strict_json(doc).decode()
        parsed = no_bare_constants(text)
        assert "NaN" not in text and "Infinity" not in text
        assert parsed["samples"]["canary"] == 0 and parsed["metrics"][0]["status"] == "no-data"
    assert doc["final"] is True  # at the horizon: it will not change any more


@pytest.mark.prometheus
def test_series_metric_reading_nan_gives_strict_json(judge_prom: LocalPrometheus) -> None:
    policy = {"horizon": "10m", "step": "15s", "interval": "1m",
              "metrics": [{"name": "ratio", "type": "series", "canary_query": "vector(0) / 0",
                           "baseline_query": "vector(1) / 0"}]}
    assert judge_prom.query("vector(0) / 0")["result"][0]["value"][1] == "NaN"
    assert judge_prom.query("vector(1) / 0")["result"][0]["value"][1] == "+Inf"
    request = parse_request({"policy": policy, "start": START})
    doc = compute_verdict(request, judge_prom.url, START + 2 * HORIZON, PolicyBook(None))
    no_bare_constants(strict_json(doc).decode())
    assert doc["verdict"] == "inconclusive"


@pytest.mark.prometheus
def test_start_may_be_omitted_then_it_is_when_the_canary_appeared(
        judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    book = PolicyBook(policies_dir)
    doc = compute_verdict(parse_request(ask(GOOD, start="")), judge_prom.url, START + 300, book)
    start = doc["start"]
    assert start is not None
    # First sample of a canary pod: one scrape after CANARY_BORN (00:13:00Z), at subquery step resolution.
    assert "2024-01-01T00:13:00.000Z" <= start <= "2024-01-01T00:13:30.000Z"
    nobody = compute_verdict(parse_request(ask("no-such-hash", start="auto")), judge_prom.url, START + 300, book)
    assert nobody["verdict"] == "inconclusive" and "no canary series" in nobody["reason"]
    assert nobody["start"] is None and nobody["final"] is False


@pytest.mark.prometheus
def test_label_values_are_escaped(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    # Pasted raw, these would break the PromQL (a Prometheus 400, i.e. a LiveError); escaped they
    # are just values that match nothing.
    weird = 'x"} or vector(1) or {a="\\'
    doc = compute_verdict(parse_request({"policy": "judge-test", "start": START, "canary": {"pod": weird},
                                         "baseline": {"pod": ["stable-a", "st.ble-(b)"],
                                                                   "rollouts_pod_template_hash": STABLE}}),
                          judge_prom.url, START + 300, PolicyBook(policies_dir))
    assert doc["verdict"] == "inconclusive" and doc["samples"]["canary"] == 0
    # The list matcher matched stable-a exactly (~20 rps for 300 s), not stable-b: "." is escaped.
    assert 5000 < doc["samples"]["baseline"] < 7000
    # Request labels are merged over the policy's arm labels.
    assert doc["selection"]["canary"] == {"pod": weird, "rollouts_pod_template_hash": "placeholder-canary"}


def test_prometheus_down_is_a_live_error(policies_dir: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LiveError, match="cannot query prometheus"):
        compute_verdict(parse_request(ask(GOOD)), dead, START + 300, PolicyBook(policies_dir))
    with pytest.raises(LiveError, match="cannot query prometheus"):
        compute_verdict(parse_request(ask(GOOD, start=None)), dead, START + 300, PolicyBook(policies_dir))


def _problems(data: Any, policies: Path | None = None) -> list[tuple[str, str]]:
    with pytest.raises(RequestError) as caught:
        request = parse_request(data)
        compute_verdict(request, "http://127.0.0.1:9", START + 300, PolicyBook(policies))
    return caught.value.problems


def test_bad_requests_name_the_field(policies_dir: Path) -> None:
    fields = lambda data, d=None: [f for f, _ in _problems(data, d)]  # noqa: E731
    assert fields([1]) == [""]
    assert fields({}) == ["policy"]
    assert fields({"policy": "judge-test", "canaryHash": "a"}) == ["stableHash"]
    assert fields({"policy": "judge-test", "canryHash": "a"})[0] == "canryHash"
    assert "did you mean canaryHash" in _problems({"policy": "p", "canryHash": "a"})[0][1]
    assert fields({"policy": "judge-test", "start": "yesterday"}) == ["start"]
    assert fields({"policy": "judge-test", "start": float("nan")}) == ["start"]
    assert fields({"policy": "judge-test", "start": "1e400"}) == ["start"]
    assert fields({"policy": "../etc/passwd"}) == ["policy"]
    assert fields({"policy": "judge-test", "canary": {"bad-label": "x"}, "baseline": {"b": 1}}) == [
        "canary.bad-label", "baseline.b"]
    assert "rollouts_pod_template_hash" in _problems({"policy": "x", "hashLabel": "rollouts-pod-template-hash",
                                                      "canaryHash": "a", "stableHash": "b"})[0][1]
    # Problems found with the policy itself.
    assert fields({"policy": "nope", "canaryHash": "a", "stableHash": "b"}, policies_dir) == ["policy"]
    assert "known: broken, judge-test" in _problems({"policy": "nope"}, policies_dir)[0][1]
    assert "is invalid" in _problems({"policy": "broken"}, policies_dir)[0][1]
    same = {"policy": "judge-test", "start": START, "canaryHash": STABLE, "stableHash": STABLE}
    assert fields(same, policies_dir) == ["baseline"]
    assert fields({"policy": "judge-test", "start": START + 400, "canaryHash": "a", "stableHash": "b"},
                  policies_dir) == ["start"]
    inline = {"policy": {"horizon": "1000h", "step": "1s", "canary": {"a": "1"}, "baseline": {"a": "2"},
                         "metrics": [{"name": "e", "type": "error-rate", "requests": "r", "errors": "e"}]}}
    assert fields(inline) == ["policy.step"]
    assert fields({"policy": {"metrics": [{"name": "e", "type": "erorr-rate"}]}}) == ["policy.metrics[0].type"]
    assert fields({"policy": {"metrics": [{"name": "e", "type": "error-rate"}]}}) == [
        "policy.metrics[0].requests", "canary", "baseline"]


def test_query_parameters_make_the_same_request() -> None:
    query = [("policy", "http"), ("canary.pod", "a"), ("canary.pod", "b"), ("baseline.pod", "c"), ("start", "10")]
    assert parse_request(parse_query(query)) == parse_request(
        {"policy": "http", "canary": {"pod": ["a", "b"]}, "baseline": {"pod": "c"}, "start": 10})
    with pytest.raises(RequestError, match="given more than once"):
        parse_query([("policy", "a"), ("policy", "b")])


def test_finite_replaces_non_finite_numbers() -> None:
    value = {"a": [float("nan"), float("inf"), -float("inf"), np.float64("nan"), 1.5, np.int64(3), 2.0], "b": None}
    assert finite(value) == {"a": [None, None, None, None, 1.5, 3, 2], "b": None}
    assert strict_json(value) == b'{"a":[null,null,null,null,1.5,3,2],"b":null}'
