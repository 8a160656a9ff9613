"""WebProvider against a real local HTTP server (argo-semantics.md §13)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from web_fixtures import Reply, StubServer, self_signed_tls

from analyzer.core.outcome import ProviderOutcome
from analyzer.providers.web import WebProvider, _timeout_seconds, go_json


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        yield stub


def measure(spec: Mapping[str, Any]) -> ProviderOutcome:
    return asyncio.run(WebProvider().measure(spec, datetime.now(UTC)))


def serve(
    server: StubServer, response: str, status: int = 200, path: str = "/m", **spec: Any
) -> ProviderOutcome:
    server.routes[path] = Reply(status=status, body=response)
    return measure({"url": server.url(path), **spec})


# --- the §13 JSON-path table, end to end ----------------------------------------------------------


@pytest.mark.parametrize(
    ("json_path", "body", "value", "value_text"),
    [
        (None, '{"a": 1, "d": null}', {"a": 1.0, "d": None}, '{"a":1,"d":null}'),
        ("{$.key[0].key2.value}", '{"key":[{"key2":{"value":"1"}}]}', "1", '"1"'),
        ("{.status}", '{"status":"ok"}', "ok", '"ok"'),
        ("{$.items[*].value}", '{"items":[{"value":1},{"value":2}]}', 1.0, "1"),
        ("{$.a}{$.b}", '{"a":1,"b":2}', 1.0, "1"),
        ("{$.items}", '{"items":[]}', [], "[]"),
        ("{$.d}", '{"d": null}', None, "null"),
        ("$.a", '{"a":1}', "$.a", '"$.a"'),
        ("{$.a}", "OK", "OK", "OK"),
        ("{$.a}", "", "", ""),
        ("{$.a}", '{"a": 12345678901234567890}', 12345678901234567890.0, "12345678901234567000"),
    ],
)
def test_table_values(
    server: StubServer, json_path: str | None, body: str, value: Any, value_text: str
) -> None:
    spec = {} if json_path is None else {"jsonPath": json_path}
    outcome = serve(server, body, **spec)
    assert outcome.error is None
    assert outcome.value == value and type(outcome.value) is type(value)
    assert outcome.value_text == value_text


@pytest.mark.parametrize(
    ("json_path", "body", "error"),
    [
        ("{$.items[*].value}", '{"items":[]}', "result of web metric produced no value"),
        (
            '{$.items[?(@.name=="x")].v}',
            '{"items":[{"name":"y","v":1}]}',
            "result of web metric produced no value",
        ),
        ("{$.missing}", '{"a":1}', "Could not find JSONPath in body: missing is not found"),
        (
            "{$.a[5]}",
            '{"a":[1]}',
            "Could not find JSONPath in body: array index out of bounds: index 5, length 1",
        ),
    ],
)
def test_table_errors(server: StubServer, json_path: str, body: str, error: str) -> None:
    outcome = serve(server, body, jsonPath=json_path)
    assert outcome.error == error
    assert outcome.value is None and outcome.value_text == ""


def test_unclosed_action_fails_before_any_request(server: StubServer) -> None:
    outcome = serve(server, "{}", jsonPath="{$.a")
    assert outcome.error == "unclosed action"
    assert server.requests == []


# --- response decoding ----------------------------------------------------------------------------


def test_numbers_are_float64_and_keys_sorted(server: StubServer) -> None:
    outcome = serve(server, '{"num": 1.2, "bool": true, "mapfield": {"foo": "bar"}, "n": 1, "neg": -0.0}')
    assert outcome.value == {"num": 1.2, "bool": True, "mapfield": {"foo": "bar"}, "n": 1.0, "neg": -0.0}
    assert isinstance(outcome.value["n"], float) and outcome.value["bool"] is True
    assert outcome.value_text == '{"bool":true,"mapfield":{"foo":"bar"},"n":1,"neg":-0,"num":1.2}'


def test_value_text_escapes_like_go(server: StubServer) -> None:
    outcome = serve(server, '{"s": "<a href=\\"x\\">&</a>\\u2028é\\n"}', jsonPath="{.s}")
    assert outcome.value == '<a href="x">&</a>\u2028é\n'
    assert outcome.value_text == '"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e\\u2028é\\n"'


def test_non_json_bodies_are_the_raw_string(server: StubServer) -> None:
    for body in (" OK\n", "NaN", '{"a": NaN}', "[1, 2", "1e400", "\ufeff{}"):
        outcome = serve(server, body)
        assert (outcome.error, outcome.value, outcome.value_text) == (None, body, body), body


def test_null_body_with_default_path_is_an_error_not_a_crash(server: StubServer) -> None:
    outcome = serve(server, "null")
    assert outcome.error is not None and outcome.error.startswith("result of web metric produced no value")
    outcome = serve(server, " null ", jsonPath="{$.a}")
    assert outcome.error == "Could not find JSONPath in body: a is not found"


def test_scalar_documents(server: StubServer) -> None:
    assert (serve(server, "true").value, serve(server, "true").value_text) == (True, "true")
    assert (serve(server, "42").value, serve(server, "42").value_text) == (42.0, "42")
    assert (serve(server, '"1"').value, serve(server, '"1"').value_text) == ("1", '"1"')


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"),
        (1.2, "1.2"),
        (-0.0, "-0"),
        (0.000001, "0.000001"),
        (1.5e-7, "1.5e-7"),
        (1e-10, "1e-10"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.2345e300, "1.2345e+300"),
        (12345678901234567890.0, "12345678901234567000"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_go_float_formatting(number: float, text: str) -> None:
    assert go_json(number) == text


# --- request --------------------------------------------------------------------------------------


def test_get_sends_headers_last_one_wins(server: StubServer) -> None:
    server.routes["/m"] = Reply(body='{"ok": true}')
    outcome = measure(
        {
            "url": server.url("/m?rollout=demo"),
            "headers": [
                {"key": "Authorization", "value": "Bearer one"},
                {"key": "X-Extra", "value": "x"},
                {"key": "authorization", "value": "Bearer two"},
            ],
            "jsonPath": "{$.ok}",
            "someUnknownField": "ignored",
        }
    )
    assert (outcome.error, outcome.value, outcome.value_text) == (None, True, "true")
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("GET", "/m?rollout=demo", b"")
    assert request.headers["authorization"] == "Bearer two"
    assert request.headers["x-extra"] == "x"


def test_post_with_string_body(server: StubServer) -> None:
    outcome = serve(server, '{"v": 0.5}', method="POST", body="raw=1&x=2", jsonPath="{.v}")
    assert outcome.value == 0.5
    (request,) = server.requests
    assert (request.method, request.body) == ("POST", b"raw=1&x=2")
    assert "content-type" not in request.headers  # Go sets none for a string body


def test_put_with_json_body_overrides_content_type(server: StubServer) -> None:
    json_body = {"service": "svc", "weights": [1.0, 2.5], "nested": {"b": True, "a": None}, "html": "<&>"}
    outcome = serve(
        server,
        "{}",
        method="PUT",
        jsonBody=json_body,
        headers=[{"key": "Content-Type", "value": "text/plain"}],
    )
    assert outcome.error is None
    (request,) = server.requests
    assert request.method == "PUT"
    assert request.headers["content-type"] == "application/json"
    assert request.body == (
        b'{"html":"\\u003c\\u0026\\u003e","nested":{"a":null,"b":true},"service":"svc","weights":[1,2.5]}'
    )


def test_other_methods_are_passed_through(server: StubServer) -> None:
    outcome = serve(server, "{}", method="DELETE", body="bye")
    assert outcome.error is None
    assert (server.requests[0].method, server.requests[0].body) == ("DELETE", b"bye")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            {"method": "POST", "body": "x", "jsonBody": {"a": 1}},
            "use either Body or JSONBody; both cannot exists for WebMetric payload",
        ),
        ({"body": "x"}, "Body/JSONBody can only be used with POST or PUT WebMetric Method types"),
        (
            {"method": "GET", "jsonBody": {}},
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types",
        ),
        (
            {"authentication": {"oauth2": {"tokenUrl": "http://idp/token"}}},
            "oauth2 authentication is not supported yet",
        ),
    ],
)
def test_invalid_requests_are_errors_without_a_request(
    server: StubServer, spec: dict[str, Any], error: str
) -> None:
    assert serve(server, "{}", **spec).error == error
    assert server.requests == []


@pytest.mark.parametrize("status", [204, 300, 404, 500, 503])
def test_status_codes(server: StubServer, status: int) -> None:
    outcome = serve(server, '{"a": 1}', status=status)
    if status == 204:  # 2xx: an empty body is the raw string ""
        assert (outcome.error, outcome.value) == (None, "")
    else:
        assert outcome.error == f"received non 2xx response code: {status}"


def test_2xx_other_than_200_is_accepted(server: StubServer) -> None:
    assert serve(server, '{"a": 1}', status=202, jsonPath="{.a}").value == 1.0


def test_redirects_are_followed(server: StubServer) -> None:
    server.routes["/old"] = Reply(status=302, headers={"Location": "/new"})
    server.routes["/new"] = Reply(body='{"a": "moved"}')
    assert measure({"url": server.url("/old"), "jsonPath": "{.a}"}).value == "moved"


# --- transport errors ---------------------------------------------------------------------------


def test_timeout(server: StubServer) -> None:
    server.routes["/slow"] = Reply(body="{}", delay=2.5)
    started = time.monotonic()
    outcome = measure({"url": server.url("/slow"), "timeoutSeconds": 1})
    assert time.monotonic() - started < 2.0
    assert (
        outcome.error
        == f'Get "{server.url("/slow")}": context deadline exceeded (Client.Timeout of 1s exceeded)'
    )


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/m"
    outcome = measure({"url": url, "method": "POST", "body": "x"})
    assert outcome.error == f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'


def test_unusable_urls() -> None:
    assert measure({"url": "no-scheme"}).error == 'Get "no-scheme": unsupported protocol scheme ""'
    assert measure({}).error == 'Get "": unsupported protocol scheme ""'


def test_garbage_spec_never_raises() -> None:
    outcome = measure({"url": 5, "headers": [1], "timeoutSeconds": "soon"})
    assert outcome.error is not None


@pytest.mark.parametrize(
    ("raw", "seconds"), [(None, 10.0), (0, 10.0), (-3, 10.0), (1, 1.0), (30, 30.0), ("x", 10.0)]
)
def test_timeout_defaults(raw: Any, seconds: float) -> None:
    assert _timeout_seconds(raw) == seconds


# --- TLS --------------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[StubServer]:
    context = self_signed_tls(tmp_path)
    if context is None:
        pytest.skip("needs the openssl binary to make a self-signed certificate")
    with StubServer(tls=context) as stub:
        yield stub


def test_self_signed_certificate_is_rejected_unless_insecure(tls_server: StubServer) -> None:
    tls_server.routes["/m"] = Reply(body='{"a": "secure"}')
    url = tls_server.url("/m")
    rejected = measure({"url": url, "jsonPath": "{.a}"})
    assert rejected.error is not None
    assert rejected.error.startswith(f'Get "{url}": tls: failed to verify certificate')
    accepted = measure({"url": url, "jsonPath": "{.a}", "insecure": True})
    assert (accepted.error, accepted.value) == (None, "secure")
