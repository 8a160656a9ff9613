"""Property-based run (schemathesis strategies, hypothesis) of the service's own OpenAPI document
against the live service: generated valid and invalid requests, by GET and POST, must never give a
5xx, and every answer must match the documented status codes, content types and schemas.

(schemathesis' pytest fixture loader does not work with this pytest version, so the strategies
are drawn inside a plain hypothesis test.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from test_server_app import AUTH, running
from test_server_app import settings as service_settings
from test_server_verdict import judge_prom, policies_dir

from analyzer.localprom import LocalPrometheus
from analyzer.server.app import build_app
from analyzer.server.openapi import openapi_document

__all__ = ["judge_prom", "policies_dir"]

SCHEMA = schemathesis.openapi.from_dict(openapi_document(["judge-test"]))
OPERATIONS = [("/api/v1/verdict", "GET"), ("/api/v1/verdict", "POST"), ("/healthz", "GET"), ("/readyz", "GET"),
              ("/metrics", "GET")]
CASES = st.one_of([SCHEMA[path][method].as_strategy(generation_mode=mode)
                   for path, method in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                   if not (mode is GenerationMode.NEGATIVE and path != "/api/v1/verdict")])
# positive_data_acceptance expects 2xx for every schema-valid request, but a valid-looking request
# may still name a policy that does not exist or a start after now (422): the documented answer.
EXCLUDED = [c for c in CHECKS.get_all() if c.__name__ == "positive_data_acceptance"]


@pytest.fixture(scope="module")
def live_service(judge_prom: LocalPrometheus, policies_dir: Path) -> Iterator[str]:
    # Real time here (not the replay clock): generated starts land anywhere, before or after the data.
    with running(build_app(service_settings(judge_prom.url, policies_dir, clock=time.time))) as url:
        yield url


@pytest.mark.prometheus
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=CASES)
def test_no_server_errors_and_documented_answers(live_service: str, case: schemathesis.Case) -> None:
    response = case.call(base_url=live_service, headers=AUTH)
    if response.status_code == 413:
        # Generated bodies can exceed the size limit; the refusal comes before any schema check
        # (and schemathesis' negative-data check does not count 413 as a rejection).
        assert response.json()["error"] == "body_too_large"
        return
    case.validate_response(response, excluded_checks=EXCLUDED)


LABEL_VALUES = st.text(max_size=12) | st.sampled_from(["5c4b7f9d8", "7d9f8b6c5", "6f8e9a1b2", "9a9a9a9a9"])
STARTS = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 2**40)
          | st.sampled_from([1704068100, 1704067200, "2024-01-01T00:15:00Z", "", "auto"])
          | st.text(max_size=30))
REACHING = st.fixed_dictionaries(
    {"policy": st.just("judge-test"), "start": STARTS},
    optional={"canaryHash": LABEL_VALUES, "stableHash": LABEL_VALUES,
              "hashLabel": st.sampled_from(["rollouts_pod_template_hash", "pod", "9x", ""]),
              "canary": st.dictionaries(st.sampled_from(["pod", "status", "x-y"]), LABEL_VALUES | st.lists(LABEL_VALUES)),
              "baseline": st.dictionaries(st.sampled_from(["pod", "rollouts_pod_template_hash"]), LABEL_VALUES)})


@pytest.mark.prometheus
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=REACHING)
def test_requests_that_reach_prometheus_never_fail_the_service(live_service: str, body: dict[str, object]) -> None:
    """Requests for the existing policy, with arbitrary starts and label values, get to the
    Prometheus queries: still no 5xx, and 200 answers are strict JSON verdicts."""
    import json

    import httpx

    payload = json.dumps(body, allow_nan=True)  # NaN/Infinity starts too: they must be a 400, not a 500
    response = httpx.post(live_service + "/api/v1/verdict", content=payload,
                          headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert response.status_code in (200, 400, 422), response.text
    parsed = json.loads(response.text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    if response.status_code == 200:
        assert parsed["verdict"] in ("pass", "fail", "inconclusive")
    else:
        assert parsed["error"] in ("malformed_json", "invalid_request")
