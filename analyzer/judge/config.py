"""Judge configuration (YAML or a dict) -> a core JudgeSpec plus where the live data comes from.

Every problem is reported, each as ``field.path: reason`` (the CLI prefixes the file name).
The format is documented in policies/README.md.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.stats import JudgeSpec, Method, MetricSpec, MetricType
from analyzer.judge.errors import JudgeInputError

TOP_KEYS = ("name", "description", "alpha", "horizon", "method", "interval", "step", "confidence",
            "pass_score", "marginal_score", "canary", "baseline", "metrics")
COMMON_KEYS = ("name", "type", "tolerance", "min_samples", "warmup", "weight", "detect")
TYPE_KEYS = {
    MetricType.ERROR_RATE: ("requests", "successes", "errors"),
    MetricType.LATENCY: ("buckets", "unit"),
    MetricType.SERIES: ("direction", "field", "canary_query", "baseline_query"),
}
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$", re.DOTALL)


@dataclass(frozen=True)
class LiveMetric:
    """PromQL sources of one metric for ``--prometheus`` (selectors get the arm matchers added)."""

    requests: str | None = None
    successes: str | None = None  # when there is no total: requests = successes + errors (Triton)
    errors: str | None = None
    buckets: str | None = None
    unit: float = 1.0  # multiply bucket bounds by this to get seconds
    field: str | None = None  # series replay: ARM[field]
    canary_query: str | None = None
    baseline_query: str | None = None


@dataclass(frozen=True)
class JudgeConfig:
    spec: JudgeSpec
    step: float = 15.0
    arms: Mapping[str, Mapping[str, str | tuple[str, ...]]] = field(default_factory=dict)
    live: Mapping[str, LiveMetric] = field(default_factory=dict)
    name: str = ""

    @property
    def series_fields(self) -> tuple[str, ...]:
        return tuple(m.field for m in self.live.values() if m.field)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.items.append(f"{path}: {reason}" if path else reason)


def _unknown(data: Mapping[str, Any], allowed: tuple[str, ...], path: str, out: _Problems) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(allowed)})"
            out.add(f"{path}{key}", f"unknown field{hint}")


def _number(data: Mapping[str, Any], key: str, path: str, out: _Problems, *, low: float, high: float = math.inf,
            low_open: bool = False, integer: bool = False) -> Any:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        out.add(path + key, f"expected {kind}, got {value!r}")
        return None
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        out.add(path + key, f"must be {bound}, got {value!r}")
        return None
    return value


def _duration(data: Mapping[str, Any], key: str, path: str, out: _Problems, *, positive: bool) -> float | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_go_duration_seconds(value.strip())
        except ValueError:
            seconds = None
    if seconds is None or math.isnan(seconds):
        out.add(path + key, f"expected a duration like 30m, 90s, 1h30m or a number of seconds, got {value!r}")
        return None
    if seconds < 0 or (positive and seconds == 0):
        out.add(path + key, f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
        return None
    return seconds


def _choice(data: Mapping[str, Any], key: str, path: str, out: _Problems, choices: tuple[str, ...]) -> str | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    if value not in choices:
        out.add(path + key, f"must be one of {', '.join(choices)}, got {value!r}")
        return None
    return str(value)


def _selector(data: Mapping[str, Any], key: str, path: str, out: _Problems) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _SELECTOR.match(value.strip()):
        out.add(path + key, "expected a series selector such as name{label=\"value\"} "
                "(arm matchers are added to it; aggregation is done by the judge)")
        return None
    return value.strip()


def _query(data: Mapping[str, Any], key: str, path: str, out: _Problems) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        out.add(path + key, "expected a PromQL query string")
        return None
    return value.strip()


def _arm(data: Any, path: str, out: _Problems) -> dict[str, str | tuple[str, ...]]:
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not data:
        out.add(path, "expected a mapping of label name -> value (or list of values)")
        return {}
    matchers: dict[str, str | tuple[str, ...]] = {}
    for label, value in data.items():
        if not isinstance(label, str) or not _LABEL.match(label):
            out.add(f"{path}.{label}", "not a valid Prometheus label name")
        elif isinstance(value, str):
            matchers[label] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            matchers[label] = tuple(value)
        else:
            out.add(f"{path}.{label}", "expected a string or a non-empty list of strings (label values, matched exactly)")
    return matchers


def _metric(raw: Any, index: int, out: _Problems, seen: set[str]) -> tuple[MetricSpec, LiveMetric] | None:
    path = f"metrics[{index}]."
    if not isinstance(raw, Mapping):
        out.add(f"metrics[{index}]", "expected a mapping with name and type")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        out.add(path + "name", "required: a non-empty string")
        name = f"metric-{index}"
    elif name in seen:
        out.add(path + "name", f"duplicate metric name {name!r}")
    seen.add(name)
    kind = _choice(raw, "type", path, out, tuple(t.value for t in MetricType))
    if "type" not in raw:
        out.add(path + "type", "required: one of " + ", ".join(t.value for t in MetricType))
    if kind is None:
        _unknown(raw, COMMON_KEYS + tuple(k for keys in TYPE_KEYS.values() for k in keys), path, out)
        return None
    mtype = MetricType(kind)
    _unknown(raw, COMMON_KEYS + TYPE_KEYS[mtype], path, out)
    overrides: dict[str, Any] = {
        "tolerance": _number(raw, "tolerance", path, out, low=1.0),
        "min_samples": _number(raw, "min_samples", path, out, low=0, integer=True),
        "warmup": _duration(raw, "warmup", path, out, positive=False),
        "weight": _number(raw, "weight", path, out, low=0.0, low_open=True),
        "detect": _number(raw, "detect", path, out, low=1.0, low_open=True),
        "direction": _choice(raw, "direction", path, out, ("increase", "decrease", "either")),
    }
    spec = MetricSpec.of(name, mtype, **overrides)
    unit = _choice(raw, "unit", path, out, tuple(UNITS))
    live = LiveMetric(
        requests=_selector(raw, "requests", path, out),
        successes=_selector(raw, "successes", path, out),
        errors=_selector(raw, "errors", path, out),
        buckets=_selector(raw, "buckets", path, out),
        unit=UNITS[unit or "s"],
        field=raw.get("field") if isinstance(raw.get("field"), str) else None,
        canary_query=_query(raw, "canary_query", path, out),
        baseline_query=_query(raw, "baseline_query", path, out),
    )
    if "field" in raw and not isinstance(raw.get("field"), str):
        out.add(path + "field", "expected the name of a field of each arm in the series lines")
    if live.requests is not None and live.successes is not None:
        out.add(path + "successes", "give requests (all requests) or successes (then requests = successes + errors)")
    elif (live.requests is None and live.successes is None) != (live.errors is None):
        out.add(path + ("errors" if live.errors is None else "requests"),
                "requests and errors go together (both selectors, or neither to read the series fields)")
    if mtype is MetricType.SERIES and not (live.field or live.canary_query):
        out.add(path + "field", "a series metric needs field (replay) or canary_query and baseline_query (live)")
    if (live.canary_query is None) != (live.baseline_query is None):
        out.add(path + ("baseline_query" if live.baseline_query is None else "canary_query"),
                "canary_query and baseline_query go together")
    return spec, live


def parse_config(data: Any) -> JudgeConfig:
    """Validate a config mapping; raises JudgeInputError listing every problem."""
    out = _Problems()
    if not isinstance(data, Mapping):
        raise JudgeInputError(["expected a mapping with alpha, horizon and metrics"])
    _unknown(data, TOP_KEYS, "", out)
    raw_metrics = data.get("metrics")
    pairs: list[tuple[MetricSpec, LiveMetric]] = []
    if not isinstance(raw_metrics, list) or not raw_metrics:
        out.add("metrics", "required: a non-empty list of metrics")
    else:
        seen: set[str] = set()
        for i, raw in enumerate(raw_metrics):
            parsed = _metric(raw, i, out, seen)
            if parsed is not None:
                pairs.append(parsed)
    alpha = _number(data, "alpha", "", out, low=0.0, high=0.5, low_open=True)
    horizon = _duration(data, "horizon", "", out, positive=True)
    method = _choice(data, "method", "", out, tuple(m.value for m in Method))
    interval = _duration(data, "interval", "", out, positive=True)
    step = _duration(data, "step", "", out, positive=True)
    confidence = _number(data, "confidence", "", out, low=0.5, high=1.0, low_open=True)
    pass_score = _number(data, "pass_score", "", out, low=0.0, high=100.0)
    marginal = _number(data, "marginal_score", "", out, low=0.0, high=100.0)
    if pass_score is not None and marginal is not None and marginal > pass_score:
        out.add("marginal_score", f"must not exceed pass_score ({pass_score:g})")
    arms = {name: _arm(data.get(name), name, out) for name in ("canary", "baseline")}
    raw_name = data.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    if out.items:
        raise JudgeInputError(out.items)
    spec = JudgeSpec(
        metrics=tuple(p[0] for p in pairs),
        alpha=alpha if alpha is not None else 0.05,
        horizon=horizon if horizon is not None else 1800.0,
        method=Method(method) if method else Method.SEQUENTIAL,
        interval=interval if interval is not None else 60.0,
        confidence=confidence,
        pass_score=pass_score if pass_score is not None else 95.0,
        marginal_score=marginal if marginal is not None else 75.0,
    )
    return JudgeConfig(spec, step if step is not None else 15.0, arms, {p[0].name: p[1] for p in pairs}, name)


def live_problems(config: JudgeConfig) -> list[str]:
    """What a config lacks for ``--prometheus`` (replay needs none of it)."""
    problems = []
    for i, metric in enumerate(config.spec.metrics):
        live = config.live[metric.name]
        path = f"metrics[{i}]."
        if metric.type is MetricType.ERROR_RATE and live.errors is None:
            problems.append(path + "requests: required with --prometheus (and errors)")
        if metric.type is MetricType.LATENCY and live.buckets is None:
            problems.append(path + "buckets: required with --prometheus")
        if metric.type is MetricType.SERIES and live.canary_query is None:
            problems.append(path + "canary_query: required with --prometheus (and baseline_query)")
    needs_arms = any(m.type is not MetricType.SERIES for m in config.spec.metrics)
    for arm in ("canary", "baseline"):
        if needs_arms and not config.arms.get(arm):
            problems.append(f"{arm}: required with --prometheus: label matchers that select this arm's series")
    return problems


def load_config(path: str | Path) -> JudgeConfig:
    """Read and validate a YAML/JSON config file; errors name the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise JudgeInputError([f"cannot read file: {exc.strerror or exc}"], source) from None
    except UnicodeDecodeError:
        raise JudgeInputError(["file is not UTF-8 text"], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise JudgeInputError([f"invalid YAML: {where}{getattr(exc, 'problem', None) or exc}"], source) from None
    try:
        return parse_config(data)
    except JudgeInputError as exc:
        raise exc.with_source(source) from None
