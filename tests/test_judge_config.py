"""Judge configs: every problem named by file, field path and reason; the shipped policies parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.core.stats import Method, MetricType
from analyzer.judge.config import live_problems, load_config, parse_config
from analyzer.judge.errors import JudgeInputError

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def problems(data: object) -> list[str]:
    with pytest.raises(JudgeInputError) as info:
        parse_config(data)
    return info.value.problems


def test_defaults() -> None:
    cfg = parse_config({"metrics": [{"name": "e", "type": "error-rate"}, {"name": "l", "type": "latency"}]})
    assert cfg.spec.alpha == 0.05 and cfg.spec.horizon == 1800 and cfg.spec.method is Method.SEQUENTIAL
    errors, latency = cfg.spec.metrics
    assert errors.tolerance == 1.0 and errors.warmup == 0 and latency.warmup == 120
    assert latency.type is MetricType.LATENCY


def test_every_problem_is_reported_with_its_field_path() -> None:
    found = problems({
        "alpha": 2, "horizon": "soon", "methd": "x",
        "metrics": [{"name": "e", "type": "error-rat"}, {"type": "latency", "tolerence": 1.1},
                    {"name": "e", "type": "error-rate", "requests": "sum(rate(x[1m]))"},
                    {"name": "f", "type": "error-rate", "requests": "x_total"}],
    })
    assert "alpha: must be > 0 and <= 0.5, got 2" in found
    assert any(p.startswith("horizon: expected a duration") for p in found)
    assert "methd: unknown field (did you mean method?)" in found
    assert any(p.startswith("metrics[0].type: must be one of error-rate, latency, series") for p in found)
    assert "metrics[1].name: required: a non-empty string" in found
    assert "metrics[1].tolerence: unknown field (did you mean tolerance?)" in found
    assert "metrics[2].name: duplicate metric name 'e'" in found
    assert any(p.startswith("metrics[2].requests: expected a series selector") for p in found)
    assert any(p.startswith("metrics[3].errors: requests and errors go together") for p in found)


def test_not_a_mapping() -> None:
    assert problems([1, 2]) == ["expected a mapping with alpha, horizon and metrics"]
    assert problems({"metrics": []}) == ["metrics: required: a non-empty list of metrics"]


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("alpha: [\n")
    with pytest.raises(JudgeInputError, match=rf"{bad}: invalid YAML: line \d+, column \d+"):
        load_config(bad)
    with pytest.raises(JudgeInputError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("metrics:\n  - {name: e, type: latency, unit: hours}\n")
    with pytest.raises(JudgeInputError, match=rf"{wrong}: metrics\[0\]\.unit: must be one of s, ms, us"):
        load_config(wrong)


def test_live_needs_selectors_and_arms() -> None:
    cfg = parse_config({"metrics": [{"name": "e", "type": "error-rate"}]})
    assert live_problems(cfg) == [
        "metrics[0].requests: required with --prometheus (and errors)",
        "canary: required with --prometheus: label matchers that select this arm's series",
        "baseline: required with --prometheus: label matchers that select this arm's series",
    ]


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_are_valid_and_ready_for_live_use(path: Path) -> None:
    cfg = load_config(path)
    assert live_problems(cfg) == []
    assert {m.type for m in cfg.spec.metrics} >= {MetricType.ERROR_RATE}
