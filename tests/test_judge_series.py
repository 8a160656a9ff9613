"""The pinned series format through the Python API and through the real CLI (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import REPO, analyzer_cmd

from analyzer.judge import JudgeInputError, judge_series
from analyzer.judge.simulate import Scenario, series_lines, simulate

CONFIG: dict[str, Any] = {
    "alpha": 0.05, "horizon": "30m",
    "metrics": [{"name": "errors", "type": "error-rate"}, {"name": "latency", "type": "latency"}],
}


def judge_cmd() -> list[str]:
    """``analyzer judge`` once the command is registered, else the module itself."""
    from analyzer.cli import main

    if "judge" in main.commands:
        return [*analyzer_cmd(), "judge"]
    return [sys.executable, "-m", "analyzer.judge.cli"]


def run_judge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*judge_cmd(), *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                          input=stdin)


def lines(scenario: Scenario, runs: int, seed: int, prefix: str, **kw: Any) -> list[dict[str, Any]]:
    return list(series_lines(simulate(scenario, runs, seed), prefix, **kw))  # type: ignore[arg-type]


def test_output_has_the_pinned_shape_one_object_per_run_in_order() -> None:
    data = lines(Scenario(canary_rps=10, error_ratio=5), 2, 1, "bad") + lines(Scenario(canary_rps=10), 1, 2, "ok")
    out = judge_series(CONFIG, data)
    assert [r["run"] for r in out] == ["bad-0", "bad-1", "ok-0"]
    for r in out:
        assert set(r) == {"run", "decision", "decided_at", "metric", "reasons"}
        assert all(isinstance(reason, str) for reason in r["reasons"]) and r["reasons"]
    assert [r["decision"] for r in out] == ["fail", "fail", "pass"]
    assert out[0]["metric"] == "errors" and 0 < out[0]["decided_at"] < 600
    assert out[2]["decided_at"] == 1800 and out[2]["metric"] is None


def test_latency_buckets_may_be_absent_and_then_latency_is_not_judged() -> None:
    data = lines(Scenario(canary_rps=10), 1, 2, "nolat", buckets=False)
    only_errors = {**CONFIG, "metrics": [{"name": "errors", "type": "error-rate"}]}
    assert judge_series(only_errors, data)[0]["decision"] == "pass"
    both = judge_series(CONFIG, data)[0]
    assert both["decision"] == "inconclusive" and "latency has no data" in both["reasons"][0]


def test_counter_reset_in_the_series_is_not_a_regression() -> None:
    data = lines(Scenario(canary_rps=100, duration=900), 1, 4, "reset", resets=(450.0,))
    canary = [d["canary"]["requests"] for d in data]  # type: ignore[index]
    assert min(b - a for a, b in zip(canary, canary[1:], strict=False)) < 0  # the reset is there
    config = {**CONFIG, "horizon": 900}
    assert judge_series(config, data)[0]["decision"] == "pass"


def test_integer_run_ids_and_empty_buckets_before_traffic() -> None:
    data = lines(Scenario(canary_rps=10), 1, 1, "x")
    for record in data:
        record["run"] = 7
    data[0]["canary"]["latency_buckets"] = {}  # type: ignore[index]  # no request yet in that arm
    out = judge_series(CONFIG, data)[0]
    assert out["run"] == 7 and out["decision"] == "pass"  # a pass needs latency data: it was kept


def test_details_add_structured_evidence() -> None:
    out = judge_series(CONFIG, lines(Scenario(canary_rps=10, error_ratio=5), 1, 1, "x"), details=True)[0]
    errors = next(d for d in out["details"] if d["name"] == "errors")
    assert errors["samples"]["canary"] > 0 and errors["evidence"]["kind"] == "e-value"
    assert errors["effect"]["low"] > 1


@pytest.mark.parametrize(("record", "message"), [
    ({"t": 10, "baseline": {"requests": 1, "errors": 0}, "canary": {"requests": 1, "errors": 0}}, "line 1: run"),
    ({"run": "a", "t": -1, "baseline": {}, "canary": {}}, "line 1: t"),
    ({"run": "a", "t": 10, "baseline": {"requests": 1, "errors": 0}}, "line 1: canary"),
    ({"run": "a", "t": 10, "baseline": {"requests": 1, "errors": 0}, "canary": {"requests": "9", "errors": 0}},
     "line 1: canary.requests: expected a number"),
    ({"run": "a", "t": 10, "baseline": {"requests": 1, "errors": 0},
      "canary": {"requests": 1, "errors": 0, "latency_buckets": {"fast": 1}}}, "canary.latency_buckets.fast"),
])
def test_bad_lines_name_the_line_and_field(record: dict[str, Any], message: str) -> None:
    with pytest.raises(JudgeInputError, match=message.replace(".", r"\.")):
        judge_series(CONFIG, [record])


def test_runs_must_be_contiguous_and_in_time_order() -> None:
    a = lines(Scenario(canary_rps=1, duration=30), 1, 1, "a")
    b = lines(Scenario(canary_rps=1, duration=30), 1, 1, "b")
    with pytest.raises(JudgeInputError, match="line 7: run 'a-0' continues after other runs"):
        judge_series(CONFIG, a + b + a[:1])
    with pytest.raises(JudgeInputError, match="line 2: t: 10 is not after the previous t=20"):
        judge_series(CONFIG, [a[1], a[0]])


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "judge.yaml"
    path.write_text("alpha: 0.05\nhorizon: 30m\nmetrics:\n  - {name: errors, type: error-rate}\n"
                    "  - {name: latency, type: latency}\n")
    return path


def test_cli_replays_series_with_exit_codes_and_json_lines(tmp_path: Path, config_file: Path) -> None:
    good = _write(tmp_path / "good.jsonl", lines(Scenario(canary_rps=10), 2, 2, "ok"))
    done = run_judge("--config", str(config_file), "--series", str(good), "--json")
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["decision"] for r in results] == ["pass", "pass"]
    mixed = _write(tmp_path / "mixed.jsonl", lines(Scenario(canary_rps=10), 1, 2, "ok")
                   + lines(Scenario(canary_rps=10, error_ratio=5), 1, 3, "bad"))
    done = run_judge("--config", str(config_file), "--series", str(mixed))
    assert done.returncode == 1  # the worst run wins
    assert "bad-0: fail" in done.stdout and "ok-0: pass" in done.stdout
    short = _write(tmp_path / "short.jsonl", lines(Scenario(canary_rps=10, duration=300), 1, 2, "s"))
    assert run_judge("--config", str(config_file), "--series", str(short)).returncode == 3


def test_cli_reads_stdin(config_file: Path) -> None:
    text = "".join(json.dumps(r) + "\n" for r in lines(Scenario(canary_rps=10, error_ratio=5), 1, 3, "in"))
    done = run_judge("--config", str(config_file), "--series", "-", "--json", stdin=text)
    assert done.returncode == 1 and json.loads(done.stdout)["run"] == "in-0"


def test_cli_bad_input_exits_2_with_file_line_and_field(tmp_path: Path, config_file: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"run": "a", "t": 10, "baseline": {"requests": 5, "errors": 0}, '
                   '"canary": {"requests": 5, "errors": -1}}\n')
    done = run_judge("--config", str(config_file), "--series", str(bad))
    assert done.returncode == 2
    assert f"{bad}: line 1: canary.errors: expected a finite count >= 0" in done.stderr
    assert "Traceback" not in done.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    done = run_judge("--config", str(config_file), "--series", str(broken))
    assert done.returncode == 2 and "line 1: invalid JSON" in done.stderr
    done = run_judge("--config", str(config_file), "--series", str(tmp_path / "absent.jsonl"))
    assert done.returncode == 2 and "cannot read file" in done.stderr
    done = run_judge("--config", str(config_file))
    assert done.returncode == 2 and "either --series" in done.stderr
