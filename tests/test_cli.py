"""`analyzer expr` and `analyzer simulate`, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args:
    - name: threshold
  metrics:
    - name: success-rate
      interval: 1m
      count: 3
      failureLimit: 1
      successCondition: len(result) > 0 && result[0] >= {{args.threshold}}
      failureCondition: len(result) > 0 && result[0] < {{args.threshold}}
      provider:
        prometheus:
          address: http://prometheus:9090
          query: q
"""


@pytest.mark.parametrize(("expr", "result", "code", "out"), [
    ("result[0] >= 0.99", "[0.995]", 0, "true"),
    ("result[0] >= 0.99", "[0.5]", 1, "false"),
    ("isNaN(result)", "NaN", 0, "true"),
    ("result.status == 'ok'", '{"status": "ok"}', 0, "true"),
])
def test_expr(expr: str, result: str, code: int, out: str) -> None:
    r = run_cli("expr", expr, "--result", result)
    assert (r.returncode, r.stdout.strip()) == (code, out), r.stderr


def test_expr_raw_string_body() -> None:
    r = run_cli("expr", 'trim(result) == "OK"', "--raw", "--result", "OK\n")
    assert (r.returncode, r.stdout.strip()) == (0, "true")


@pytest.mark.parametrize(("expr", "result", "message"), [
    ("result[0] >=", "[1]", "unexpected token EOF at column 13"),
    ("result > 1", "[2]", "mismatched types []float64 and int"),
    ("result[0]", "[2]", "expected bool, but got float64"),
    ("result[0] > 1", "[1, ", "--result: invalid JSON"),
])
def test_expr_errors_are_bad_input(expr: str, result: str, message: str) -> None:
    r = run_cli("expr", expr, "--result", result)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def _write(tmp_path: Path, results: dict[str, object]) -> tuple[Path, Path]:
    t, res = tmp_path / "t.yaml", tmp_path / "results.yaml"
    t.write_text(TEMPLATE)
    res.write_text(json.dumps(results))
    return t, res


@pytest.mark.parametrize(("values", "code", "phase"), [
    ([[0.995], [0.999], [0.991]], 0, "Successful"),
    ([[0.5], [0.995], [0.4]], 1, "Failed"),
    ([[], [], []], 0, "Successful"),  # both conditions false => Inconclusive measurements...
])
def test_simulate_exit_codes(tmp_path: Path, values: list[list[float]], code: int, phase: str) -> None:
    t, res = _write(tmp_path, {"success-rate": [{"value": v} for v in values]})
    r = run_cli("simulate", str(t), "--results", str(res), "--arg", "threshold=0.99", "--json")
    status = json.loads(r.stdout)
    if values == [[], [], []]:
        # ...and the default inconclusiveLimit 0 makes the first one end the run Inconclusive: exit 3.
        assert (r.returncode, status["phase"]) == (3, "Inconclusive")
        assert status["message"] == 'Metric "success-rate" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)'
        return
    assert (r.returncode, status["phase"]) == (code, phase)
    assert [m["phase"] for m in status["metricResults"][0]["measurements"]][:1]


def test_simulate_error_outcomes_and_table_output(tmp_path: Path) -> None:
    t, res = _write(tmp_path, {"success-rate": [{"error": "connection refused"}] * 5})
    r = run_cli("simulate", str(t), "--results", str(res), "--arg", "threshold=0.99")
    assert r.returncode == 1
    assert "Error" in r.stdout and "consecutiveErrors (5) > consecutiveErrorLimit (4)" in r.stdout


def test_simulate_missing_arg_is_bad_input(tmp_path: Path) -> None:
    t, res = _write(tmp_path, {"success-rate": [{"value": [1]}]})
    r = run_cli("simulate", str(t), "--results", str(res))
    assert r.returncode == 2
    assert "spec.args: no value for threshold" in r.stderr and "--arg threshold=" in r.stderr


def test_simulate_unknown_metric_in_results(tmp_path: Path) -> None:
    t, res = _write(tmp_path, {"latency": [{"value": [1]}]})
    r = run_cli("simulate", str(t), "--results", str(res), "--arg", "threshold=0.9")
    assert r.returncode == 2 and "latency: no metric of that name" in r.stderr


def test_simulate_ran_out_is_undecided(tmp_path: Path) -> None:
    t, res = _write(tmp_path, {"success-rate": [{"value": [0.995]}]})
    r = run_cli("simulate", str(t), "--results", str(res), "--arg", "threshold=0.99", "--json")
    assert r.returncode == 3
    assert json.loads(r.stdout)["phase"] == "Running"
