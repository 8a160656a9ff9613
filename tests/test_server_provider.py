"""provider.judge: the verdict document as a metric value, in-process, against the real Prometheus."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_server_verdict import BAD, GOOD, HORIZON, IDLE, STABLE, START, judge_prom, policies_dir

from analyzer.core.conditions import to_measurement
from analyzer.localprom import LocalPrometheus, free_port
from analyzer.providers.judge import JudgeProvider

__all__ = ["judge_prom", "policies_dir"]
AT = datetime.fromtimestamp(START + 2 * HORIZON, UTC)


def spec(canary: str, **extra: object) -> dict[str, object]:
    return {"policy": "judge-test", "start": "2024-01-01T00:15:00Z", "canaryHash": canary, "stableHash": STABLE,
            **extra}


@pytest.mark.prometheus
def test_value_is_the_verdict_document(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    provider = JudgeProvider(judge_prom.url, policies_dir)
    for canary, verdict in ((GOOD, "pass"), (BAD, "fail"), (IDLE, "inconclusive")):
        outcome = asyncio.run(provider.measure(spec(canary), AT))
        assert outcome.error is None, outcome.error
        assert outcome.value["verdict"] == verdict and outcome.metadata["verdict"] == verdict
        assert json.loads(outcome.value_text, parse_constant=lambda c: pytest.fail(c)) == outcome.value
    # The template's conditions work on it, with Argo's truth table.
    outcome = asyncio.run(provider.measure(spec(BAD), AT))
    measured = to_measurement('result.verdict == "pass"', 'result.verdict == "fail"', outcome, AT, AT)
    assert measured.phase == "Failed"


@pytest.mark.prometheus
def test_address_in_the_spec_wins(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    provider = JudgeProvider(f"http://127.0.0.1:{free_port()}", policies_dir)
    outcome = asyncio.run(provider.measure(spec(GOOD, address=judge_prom.url), AT))
    assert outcome.error is None and outcome.value["verdict"] == "pass"


def test_failures_are_error_measurements_not_exceptions(policies_dir: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    provider = JudgeProvider(dead, policies_dir)
    outcome = asyncio.run(provider.measure(spec(GOOD), AT))
    assert outcome.error is not None and "could not analyse: cannot query prometheus" in outcome.error
    outcome = asyncio.run(provider.measure({"policy": "judge-test", "canaryHash": GOOD}, AT))
    assert outcome.error == ("judge: stableHash: canaryHash and stableHash go together "
                             "(the two pod-template hashes to compare)")
    outcome = asyncio.run(JudgeProvider(None, policies_dir).measure(spec(GOOD, address="prometheus:9090"), AT))
    assert outcome.error is not None and "address: expected an http(s) Prometheus URL" in outcome.error
    outcome = asyncio.run(provider.measure("nonsense", AT))  # type: ignore[arg-type]
    assert outcome.error is not None and outcome.error.startswith("judge:")


def test_named_policies_come_from_analyzer_policies_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package (the container image) has no source checkout beside it: the image
    points ANALYZER_POLICIES at the policies it ships, and both the provider and serve use it."""
    from analyzer.server.verdict import default_policies_dir

    monkeypatch.setenv("ANALYZER_POLICIES", str(tmp_path))
    assert default_policies_dir() == tmp_path
    monkeypatch.delenv("ANALYZER_POLICIES")
    assert (default_policies_dir() / "http.yaml").is_file()
