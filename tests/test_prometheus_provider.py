"""The Argo-compatible prometheus provider, against a real Prometheus and real local HTTP servers."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
from prom_fixtures import EPOCH, Recorded, Reply, StubServer, at, envelope

from analyzer.core.outcome import ProviderOutcome
from analyzer.demo.workload import Profile, Workload, backfill_openmetrics
from analyzer.localprom import LocalPrometheus, LocalPrometheusError, PrometheusNotInstalled, free_port
from analyzer.providers.prometheus import PrometheusError, PrometheusProvider, convert_result, format_go_float

StubFactory = Callable[..., StubServer]
NOW = at(1800)  # half-way through the backfilled hour


def measure(
    spec: Mapping[str, Any], now: datetime = NOW, provider: PrometheusProvider | None = None
) -> ProviderOutcome:
    return asyncio.run((provider or PrometheusProvider()).measure(spec, now))


def same_floats(actual: list[float], expected: list[float]) -> bool:
    return len(actual) == len(expected) and all(
        (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e)
        for a, e in zip(actual, expected, strict=True)
    )


# -- format_go_float and result conversion (no server) ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (10.0, "10"),
        (0.5, "0.5"),
        (1e-07, "0.0000001"),
        (1e21, "1000000000000000000000"),
        (123456789.125, "123456789.125"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-2.5, "-2.5"),
        (-0.0, "-0"),
        (0.0, "0"),
        (5, "5"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
    ],
)
def test_format_go_float(value: float, text: str) -> None:
    assert format_go_float(value) == text


def test_format_go_float_never_uses_exponents() -> None:
    assert format_go_float(1.7976931348623157e308) == "17976931348623157" + "0" * 292
    assert format_go_float(5e-324) == "0." + "0" * 323 + "5"


def test_convert_scalar_vector_matrix() -> None:
    assert convert_result({"resultType": "scalar", "result": [1, "10"]}) == (10.0, "10")
    vector = {
        "resultType": "vector",
        "result": [{"metric": {}, "value": [1, "10"]}, {"metric": {"a": "b"}, "value": [1, "11"]}],
    }
    assert convert_result(vector) == ([10.0, 11.0], "[10,11]")
    assert convert_result({"resultType": "vector", "result": []}) == ([], "[]")
    matrix = {
        "resultType": "matrix",
        "result": [
            {"metric": {"s": "1"}, "values": [[1, "1"], [2, "2"]]},
            {"metric": {"s": "2"}, "values": [[1, "3"]]},
        ],
    }
    assert convert_result(matrix) == ([1.0, 2.0, 3.0], "[1,2,3]")


def test_convert_special_floats() -> None:
    values, text = convert_result(
        {
            "resultType": "vector",
            "result": [{"value": [1, "NaN"]}, {"value": [1, "+Inf"]}, {"value": [1, "-Inf"]}],
        }
    )
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    assert text == "[NaN,+Inf,-Inf]"


@pytest.mark.parametrize(
    "data",
    [
        {"resultType": "string", "result": [1, "abc"]},
        {"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {"count": "1"}]}]},
        {"resultType": "matrix", "result": [{"metric": {}, "histograms": []}]},
        {"result": []},
        None,
    ],
)
def test_convert_unsupported_shapes(data: Any) -> None:
    with pytest.raises(PrometheusError, match="^Prometheus metric type not supported$"):
        convert_result(data)


# -- configuration errors (Argo's texts; no request is made) -------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"address": "localhost:9090", "query": "up"}, "prometheus address is not is url format"),
        ({"address": "not a url", "query": "up"}, "prometheus address is not is url format"),
        ({"query": "up"}, "prometheus address is not configured"),
        ({"address": "http://x", "query": "up", "timeout": -1}, "prometheus timeout should not be negative"),
        (
            {"address": "http://x", "query": "up", "authentication": {"basicAuth": {"username": "u"}}},
            "missing mandatory parameter in metric for basic auth setup: password",
        ),
        (
            {"address": "http://x", "query": "up", "authentication": {"basicAuth": {"password": "p"}}},
            "missing mandatory parameter in metric for basic auth setup: username",
        ),
        (
            {"address": "http://x", "query": "up", "authentication": {"oauth2": {"tokenUrl": "http://t"}}},
            "missing mandatory parameter in metric for OAuth2 setup",
        ),
        (
            {"address": "http://x", "query": "up", "headers": {"a": "b"}},
            "prometheus headers must be a list of {key, value}",
        ),
    ],
)
def test_configuration_errors(spec: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", raising=False)
    outcome = measure(spec)
    assert outcome.error == message
    assert outcome.value is None and outcome.value_text == ""


def test_oauth2_is_refused_not_crashed() -> None:
    spec = {
        "address": "http://x",
        "query": "up",
        "authentication": {"oauth2": {"tokenUrl": "http://t", "clientId": "id", "clientSecret": "s"}},
    }
    outcome = measure(spec)
    assert outcome.error is not None and "oauth2 is not supported yet" in outcome.error


def test_address_from_env_and_default(stub_http: StubFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    stub = stub_http(lambda _: envelope({"resultType": "vector", "result": []}))
    monkeypatch.setenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", stub.url)
    assert measure({"query": "up"}).value == []  # env read at construction, as Argo does
    monkeypatch.setenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", "not-a-url")
    assert measure({"query": "up"}).error == "prometheus address is not is url format"
    # The CLI's --prometheus beats the environment; an explicit address beats both.
    assert measure({"query": "up"}, provider=PrometheusProvider(default_address=stub.url)).value == []
    down = f"http://127.0.0.1:{free_port()}"
    assert (
        measure({"query": "up", "address": stub.url}, provider=PrometheusProvider(default_address=down)).value
        == []
    )


# -- a real Prometheus with backfilled history ---------------------------------------------------

real = pytest.mark.prometheus


def spec_for(prom: LocalPrometheus, query: str, **extra: Any) -> dict[str, Any]:
    return {"address": prom.url, "query": query, **extra}


@real
def test_instant_vector_at_virtual_now(backfilled_prometheus: LocalPrometheus) -> None:
    query = 'sort(sum by (version) (rate(inference_requests_total{version=~"stable|canary"}[5m])))'
    outcome = measure(spec_for(backfilled_prometheus, query))
    assert outcome.error is None
    assert outcome.value == [2.0, 10.0]
    assert outcome.value_text == "[2,10]"
    assert outcome.metadata == {"resolvedQuery": query}


@real
def test_wall_clock_now_sees_no_backfilled_data(backfilled_prometheus: LocalPrometheus) -> None:
    outcome = measure(spec_for(backfilled_prometheus, "inference_requests_total"), now=datetime.now(UTC))
    assert (outcome.error, outcome.value, outcome.value_text) == (None, [], "[]")


@real
def test_nan_from_zero_over_zero(backfilled_prometheus: LocalPrometheus) -> None:
    query = (
        'sum(rate(inference_success_total{version="idle"}[5m]))'
        ' / sum(rate(inference_requests_total{version="idle"}[5m]))'
    )
    outcome = measure(spec_for(backfilled_prometheus, query))
    assert outcome.error is None
    assert len(outcome.value) == 1 and math.isnan(outcome.value[0])
    assert outcome.value_text == "[NaN]"


@real
def test_empty_vector(backfilled_prometheus: LocalPrometheus) -> None:
    outcome = measure(spec_for(backfilled_prometheus, 'inference_requests_total{version="absent"}'))
    assert (outcome.error, outcome.value, outcome.value_text) == (None, [], "[]")


@real
@pytest.mark.parametrize(
    ("query", "value", "text"),
    [
        ('scalar(sum(rate(inference_requests_total{version="stable"}[5m])))', 10.0, "10"),
        ("scalar(vector(0.5))", 0.5, "0.5"),
        ("1/0", math.inf, "+Inf"),
        ("-1/0", -math.inf, "-Inf"),
        ("0/0", math.nan, "NaN"),
        ("1e-7", 1e-7, "0.0000001"),
    ],
)
def test_scalars(backfilled_prometheus: LocalPrometheus, query: str, value: float, text: str) -> None:
    outcome = measure(spec_for(backfilled_prometheus, query))
    assert outcome.error is None
    assert isinstance(outcome.value, float)
    assert same_floats([outcome.value], [value])
    assert outcome.value_text == text


@real
def test_vector_of_one(backfilled_prometheus: LocalPrometheus) -> None:
    outcome = measure(spec_for(backfilled_prometheus, "vector(1)"))
    assert (outcome.value, outcome.value_text) == ([1.0], "[1]")


@real
def test_error_rate_and_latency_from_history(backfilled_prometheus: LocalPrometheus) -> None:
    error_rate = (
        '1 - sum(rate(inference_success_total{version="canary"}[30m]))'
        ' / sum(rate(inference_requests_total{version="canary"}[30m]))'
    )
    outcome = measure(spec_for(backfilled_prometheus, error_rate))
    assert 0.02 < outcome.value[0] < 0.08  # profile: 5 %
    p95 = 'histogram_quantile(0.95, sum by (le) (rate(inference_request_duration_seconds_bucket{version="stable"}[30m])))'
    outcome = measure(spec_for(backfilled_prometheus, p95))
    assert 0.05 < outcome.value[0] < 0.25  # log-normal around 50 ms


@real
def test_string_result_is_unsupported(backfilled_prometheus: LocalPrometheus) -> None:
    outcome = measure(spec_for(backfilled_prometheus, '"abc"'))
    assert outcome.error == "Prometheus metric type not supported"
    assert outcome.value_text == ""


@real
def test_bad_query_reports_error_type(backfilled_prometheus: LocalPrometheus) -> None:
    outcome = measure(spec_for(backfilled_prometheus, "sum(rate("))
    assert outcome.error is not None
    assert outcome.error.startswith("bad_data: ")
    assert "parse error" in outcome.error
    assert outcome.metadata["resolvedQuery"] == "sum(rate("


@real
def test_real_warnings_kept_in_metadata(warning_prometheus: LocalPrometheus) -> None:
    outcome = measure(spec_for(warning_prometheus, "absent(up)"))
    assert outcome.error is None and outcome.value == [1.0]
    warnings = outcome.metadata["warnings"]
    assert warnings.startswith('"remote_read: ') and warnings.endswith('"')
    assert "connection refused" in warnings


# -- range queries (start/end are expr expressions) ------------------------------------------------


@real
def test_range_query_matrix_is_flattened(backfilled_prometheus: LocalPrometheus) -> None:
    spec = spec_for(
        backfilled_prometheus,
        'sum by (version) (rate(inference_requests_total{version=~"stable|canary"}[5m]))',
        rangeQuery={"start": 'now() - duration("2m")', "end": "now()", "step": "1m"},
    )
    outcome = measure(spec)
    assert outcome.error is None
    # A matrix comes back sorted by labels: canary's points, then stable's, each in time order.
    assert outcome.value == [2.0, 2.0, 2.0, 10.0, 10.0, 10.0]
    assert outcome.value_text == "[2,2,2,10,10,10]"


@real
def test_range_query_with_fixed_dates_like_argo(backfilled_prometheus: LocalPrometheus) -> None:
    spec = spec_for(
        backfilled_prometheus,
        'sum(rate(inference_requests_total{version="stable"}[5m]))',
        rangeQuery={
            "start": 'date("2024-01-01 00:30:00", "2006-01-02 15:04:05", "UTC") - duration("1m30s")',
            "end": 'date("2024-01-01 00:30:00", "2006-01-02 15:04:05", "UTC")',
            "step": "30s",
        },
    )
    outcome = measure(spec, now=datetime.now(UTC))  # dates are absolute: `now` does not matter
    assert outcome.error is None
    assert outcome.value == [10.0, 10.0, 10.0, 10.0]


def test_range_query_sends_unix_seconds(stub_http: StubFactory) -> None:
    stub = stub_http(lambda _: envelope({"resultType": "matrix", "result": []}))
    spec = {
        "address": stub.url,
        "query": "up",
        "rangeQuery": {"start": 'now() - duration("1h")', "end": "now()", "step": "1m30s"},
    }
    outcome = measure(spec)
    assert (outcome.error, outcome.value, outcome.value_text) == (None, [], "[]")
    sent = parse_qs(stub.last().body)
    assert stub.last().path == "/api/v1/query_range"
    assert sent == {
        "query": ["up"],
        "start": [str(EPOCH + 1800 - 3600)],
        "end": [str(EPOCH + 1800)],
        "step": ["90"],
    }


@pytest.mark.parametrize(
    ("range_query", "prefix"),
    [
        (
            {"start": 'now() - duration("??")', "end": "now()", "step": "1m"},
            "failed to parse rangeQuery.start as time: ",
        ),
        (
            {"start": "now()", "end": 'now() - duration("??")', "step": "1m"},
            "failed to parse rangeQuery.end as time: ",
        ),
        (
            {"start": "now()", "end": "now()", "step": "??"},
            'failed to parse rangeQuery.step as duration: time: invalid duration "??"',
        ),
        (
            {"start": "now()", "end": "now()", "step": "1d"},
            'failed to parse rangeQuery.step as duration: time: unknown unit "d" in duration "1d"',
        ),
        (
            {"start": "now()", "end": "now()"},
            'failed to parse rangeQuery.step as duration: time: invalid duration ""',
        ),
        (
            {"start": "1", "end": "now()", "step": "1m"},
            "failed to parse rangeQuery.start as time: expected time.Time, but got int",
        ),
    ],
)
def test_range_query_errors(range_query: dict[str, str], prefix: str) -> None:
    outcome = measure({"address": "http://127.0.0.1:1", "query": "up", "rangeQuery": range_query})
    assert outcome.error is not None and outcome.error.startswith(prefix), outcome.error


# -- real local HTTP servers standing in for odd Prometheus answers ------------------------------


def test_instant_query_is_a_form_post_with_explicit_time(stub_http: StubFactory) -> None:
    stub = stub_http(
        lambda _: envelope({"resultType": "vector", "result": [{"metric": {}, "value": [1, "3"]}]})
    )
    outcome = measure({"address": stub.url + "/prom/", "query": 'sum(x{a="b c"})'}, now=at(0.25))
    assert outcome.value == [3.0]
    request = stub.last()
    assert (request.method, request.path) == ("POST", "/prom/api/v1/query")
    assert parse_qs(request.body) == {"query": ['sum(x{a="b c"})'], "time": [f"{EPOCH}.25"]}


def test_falls_back_to_get_when_post_is_not_allowed(stub_http: StubFactory) -> None:
    def responder(request: Recorded) -> Reply:
        if request.method == "POST":
            return Reply(status=405, body="method not allowed", content_type="text/plain")
        return envelope({"resultType": "scalar", "result": [1, "7"]})

    stub = stub_http(responder)
    outcome = measure({"address": stub.url, "query": "up"})
    assert (outcome.value, outcome.value_text) == (7.0, "7")
    assert [r.method for r in stub.requests] == ["POST", "GET"]
    assert "query=up" in stub.last().path


def test_headers_and_basic_auth_reach_the_server(stub_http: StubFactory) -> None:
    stub = stub_http(lambda _: envelope({"resultType": "vector", "result": []}))
    spec = {
        "address": stub.url,
        "query": "up",
        "authentication": {"basicAuth": {"username": "alice", "password": "s3cr:et"}},
        "headers": [{"key": "X-Scope-OrgID", "value": "first"}, {"key": "x-scope-orgid", "value": "second"}],
    }
    assert measure(spec).error is None
    headers = stub.last().headers
    assert headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cr:et").decode()
    assert headers["x-scope-orgid"] == "second"  # same key: last wins


def test_bearer_token_through_headers_overrides_basic_auth(stub_http: StubFactory) -> None:
    stub = stub_http(lambda _: envelope({"resultType": "vector", "result": []}))
    spec = {
        "address": stub.url,
        "query": "up",
        "authentication": {"basicAuth": {"username": "u", "password": "p"}},
        "headers": [{"key": "Authorization", "value": "Bearer tok"}],
    }
    assert measure(spec).error is None
    assert stub.last().headers["authorization"] == "Bearer tok"


def test_warnings_and_infos_envelope(stub_http: StubFactory) -> None:
    stub = stub_http(
        lambda _: envelope(
            {"resultType": "vector", "result": [{"value": [1, "1"]}]}, warnings=["w1", "w2"], infos=["i1"]
        )
    )
    outcome = measure({"address": stub.url, "query": "up"})
    assert outcome.value == [1.0]
    assert outcome.metadata["warnings"] == '"w1", "w2", "i1"'


def test_prometheus_error_envelope(stub_http: StubFactory) -> None:
    stub = stub_http(
        lambda _: Reply(
            503, '{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}'
        )
    )
    assert (
        measure({"address": stub.url, "query": "up"}).error
        == "timeout: query timed out in expression evaluation"
    )


def test_html_error_page_is_summarised(stub_http: StubFactory) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
        + "x" * 500
        + "</body></html>"
    )
    stub = stub_http(lambda _: Reply(502, page, content_type="text/html"))
    error = measure({"address": stub.url, "query": "up"}).error
    assert error is not None
    assert error.startswith(
        "prometheus returned HTTP 502 with a non-JSON body: 502 Bad Gateway Bad Gateway x"
    )
    assert len(error) < 300


def test_non_json_success_body(stub_http: StubFactory) -> None:
    stub = stub_http(lambda _: Reply(200, "hello", content_type="text/plain"))
    assert (
        measure({"address": stub.url, "query": "up"}).error
        == "prometheus returned HTTP 200 with a non-JSON body: hello"
    )


def test_timeout_against_a_slow_server(stub_http: StubFactory) -> None:
    stub = stub_http(lambda _: Reply(delay=10, body=envelope({"resultType": "vector", "result": []}).body))
    started = time.monotonic()
    outcome = measure({"address": stub.url, "query": "up", "timeout": 0.3})
    assert outcome.error == "prometheus query timed out after 0.3s"
    assert time.monotonic() - started < 3
    assert len(stub.requests) == 1  # no retries


def test_server_down() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    outcome = measure({"address": address, "query": "up"})
    assert outcome.error is not None and outcome.error.startswith(f"cannot reach prometheus at {address}: ")


def test_credentials_in_address_are_not_echoed() -> None:
    port = free_port()
    outcome = measure({"address": f"http://user:hunter2@127.0.0.1:{port}", "query": "up"})
    assert outcome.error is not None and outcome.error.startswith(
        f"cannot reach prometheus at http://***@127.0.0.1:{port}: "
    )
    assert "hunter2" not in outcome.error


def test_insecure_skips_certificate_verification(stub_http: StubFactory, self_signed_cert: Any) -> None:
    stub = stub_http(lambda _: envelope({"resultType": "scalar", "result": [1, "1"]}), tls=self_signed_cert)
    assert stub.url.startswith("https://")
    refused = measure({"address": stub.url, "query": "up"})
    assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    accepted = measure({"address": stub.url, "query": "up", "insecure": True})
    assert (accepted.error, accepted.value) == (None, 1.0)


# -- live scrapes of the fake inference workload -----------------------------------------------


@real
def test_live_scrapes_of_workload(scraped_workload: tuple[Workload, LocalPrometheus]) -> None:
    _, prom = scraped_workload
    error_rate = (
        '1 - sum(rate(inference_success_total{version="%s"}[10s]))'
        ' / sum(rate(inference_requests_total{version="%s"}[10s]))'
    )
    # rate() needs two scrapes inside the window: poll until it answers rather than sleeping.
    prom.wait_for(error_rate % ("v2", "v2"), timeout=15)
    provider = PrometheusProvider(default_address=prom.url)
    bad = asyncio.run(provider.measure({"query": error_rate % ("v2", "v2")}, datetime.now(UTC)))
    good = asyncio.run(provider.measure({"query": error_rate % ("v1", "v1")}, datetime.now(UTC)))
    assert bad.error is None and good.error is None
    assert 0.25 < bad.value[0] < 0.75  # profile: 50 %
    assert good.value == [0.0]


# -- the workload and the launcher themselves ------------------------------------------------------


def test_workload_profiles_change_at_runtime() -> None:
    workload = Workload(versions={"v1": Profile(rps=100, error_rate=0.0)}, seed=1)
    workload.simulate(1.0)
    workload.set_profile("v1", Profile(rps=100, error_rate=1.0))
    workload.simulate(1.0)

    def sample(name: str) -> float | None:
        return workload.registry.get_sample_value(name, {"app": "inference", "version": "v1"})

    assert (sample("inference_requests_total"), sample("inference_success_total")) == (200.0, 100.0)
    assert sample("inference_request_duration_seconds_count") == 200.0


def test_backfill_is_deterministic() -> None:
    profiles = {"a": Profile(rps=3, error_rate=0.1)}
    text = backfill_openmetrics(profiles, start=EPOCH, duration=120)
    assert text == backfill_openmetrics(profiles, start=EPOCH, duration=120)
    assert text != backfill_openmetrics(profiles, start=EPOCH, duration=120, seed=2)
    assert text.endswith("# EOF\n")
    assert f'inference_requests_total{{app="inference",version="a"}} 0 {EPOCH}\n' in text
    assert f'inference_requests_total{{app="inference",version="a"}} 315 {EPOCH + 105}\n' in text
    assert 'le="+Inf"' in text and 'le="10.0"' in text


def test_missing_binary_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("analyzer.localprom.shutil.which", lambda name: None)
    with pytest.raises(PrometheusNotInstalled, match="apt-get install -y --no-install-recommends prometheus"):
        LocalPrometheus().start()


@real
def test_launcher_cleans_up_and_wait_for_times_out(require_prometheus: None) -> None:
    with LocalPrometheus() as prom:
        pid, data_dir = prom.pid, prom._tmp
        assert data_dir is not None and data_dir.exists()
        with pytest.raises(LocalPrometheusError, match="returned no data within"):
            prom.wait_for('up{job="nothing"}', timeout=0.3)
    assert prom.pid is None and not data_dir.exists()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
