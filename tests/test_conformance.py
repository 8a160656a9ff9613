"""Argo conformance cases run through the public API (analyzer.simulate, evaluate_condition).

By default the sample shipped in tests/data is used; set ANALYZER_CONFORMANCE_FILES to a
colon-separated list of files in the same format to run other sets (e.g. a larger hidden one).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import analyzer
from analyzer.core.durations import parse_go_duration_seconds

HERE = Path(__file__).parent
DEFAULT = [HERE / "data" / "argo-cases-sample.yaml"]
SHARED = HERE.parent.parent / "shared" / "conformance" / "argo-cases-sample.yaml"


def _files() -> list[Path]:
    env = os.environ.get("ANALYZER_CONFORMANCE_FILES")
    if env:
        return [Path(p) for p in env.split(":") if p]
    return DEFAULT


def _load(kind: str) -> list[Any]:
    params = []
    for f in _files():
        doc = yaml.safe_load(f.read_text())
        for case in doc.get(kind) or []:
            params.append(pytest.param(case, id=f"{f.stem}:{case['id']}"))
    return params


_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}


def typed(result_type: str, value: Any) -> Any:
    if result_type == "prom_vector":
        return [float(_SPECIAL.get(v, v)) for v in value]
    if result_type == "prom_scalar":
        return float(_SPECIAL.get(value, value))
    return value


def test_shipped_sample_matches_shared_copy() -> None:
    if not SHARED.exists():
        pytest.skip("../shared is not beside this checkout; the shipped copy is used alone")
    assert SHARED.read_text() == DEFAULT[0].read_text()


@pytest.mark.parametrize("case", _load("expressions"))
def test_expression(case: dict[str, Any]) -> None:
    result = typed(case["result_type"], case["result"])
    if case["expect"] == "error":
        with pytest.raises(analyzer.ExpressionError):
            analyzer.evaluate_condition(case["expr"], result)
    else:
        assert analyzer.evaluate_condition(case["expr"], result) is case["expect"]


def _template(case: dict[str, Any]) -> dict[str, Any]:
    metrics = case.get("metrics") or [case["metric"]]
    spec: dict[str, Any] = {"metrics": [_metric(m) for m in metrics]}
    for key in ("args", "dryRun", "measurementRetention"):
        if case.get(key) is not None:
            spec[key] = case[key]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": case["id"]},
            "spec": spec}


def _metric(m: dict[str, Any]) -> dict[str, Any]:
    out = dict(m)
    if isinstance(out.get("provider"), str):
        kind = out["provider"]
        out["provider"] = {kind: {"query": "q"} if kind == "prometheus" else {"url": "http://x"}}
    return out


def _results(case: dict[str, Any]) -> dict[str, list[Any]]:
    ms = case.get("measurements") or []
    names = [m["name"] for m in (case.get("metrics") or [case["metric"]])]
    raw = ms if isinstance(ms, dict) else {names[0]: ms}
    rt = case.get("result_type", "prom_vector")
    return {name: [{"value": typed(rt, o["value"])} if "value" in o else o for o in outs]
            for name, outs in raw.items()}


def _check_metric(mr: dict[str, Any] | None, exp: dict[str, Any], label: str) -> None:
    taken = 0 if mr is None else len(mr["measurements"])
    if "phase" in exp or "metric_phase" in exp:
        want = exp.get("phase", exp.get("metric_phase"))
        assert (mr["phase"] if mr else None) == want, label
    if "measurements_taken" in exp:
        assert taken == exp["measurements_taken"], label
    if "measurement_phases" in exp:
        assert [m["phase"] for m in mr["measurements"]] == exp["measurement_phases"], label
    if "measurement_messages" in exp:
        assert [m["message"] for m in mr["measurements"]] == exp["measurement_messages"], label
    if "counters" in exp:
        got = {k: mr[k] for k in exp["counters"]}
        assert got == exp["counters"], label
    msg = exp.get("message", exp.get("metric_message"))
    if msg is not None:
        assert mr["message"] == msg, label
    if "wait_before_next_measurement" in exp:
        from datetime import datetime

        times = [datetime.fromisoformat(m["startedAt"].replace("Z", "+00:00")) for m in mr["measurements"]]
        waits = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert waits == [parse_go_duration_seconds(w) for w in exp["wait_before_next_measurement"]], label


@pytest.mark.parametrize("case", _load("runs"))
def test_run(case: dict[str, Any]) -> None:
    status = analyzer.simulate(_template(case), _results(case), terminate_after=case.get("terminate_after_ticks"))
    exp = case["expect"]
    assert status["phase"] == exp["run_phase"]
    if "run_message" in exp:
        assert status["message"] == exp["run_message"]
    results = {r["name"]: r for r in status["metricResults"]}
    if "metrics" in exp:
        for name, mexp in exp["metrics"].items():
            _check_metric(results.get(name), mexp, name)
    else:
        only = next(iter(results.values()), None)
        _check_metric(only, exp, "metric")
    for key in ("runSummary", "dryRunSummary"):
        if key in exp:
            assert status[key] == exp[key]
