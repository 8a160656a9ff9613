"""The series format (fixed; other tools produce it): JSON lines, one observation per line.

``{"run": id, "t": seconds since start, "baseline": ARM, "canary": ARM}`` with
``ARM = {"requests": n, "errors": n, "latency_buckets": {"<le>": n, ..., "+Inf": n}}``; counts
are cumulative since the start, buckets have Prometheus ``le`` meaning (bounds in seconds) and
may be absent. Lines of a run come together and in time order. Extra fields are ignored, except
that a ``series`` metric with ``field: X`` reads ``ARM[X]`` (a reading, not a counter).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzer.core.stats import Arm, Steps
from analyzer.core.stats.steps import arm_increments
from analyzer.judge.errors import JudgeInputError

ARMS = ("canary", "baseline")


@dataclass
class _ArmRows:
    requests: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    buckets: list[dict[float, float] | None] = field(default_factory=list)
    fields: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class RunRows:
    """The raw rows of one run, validated."""

    run: str
    first_line: int
    run_id: Any = None  # the id as given (a number stays a number in the output)
    t: list[float] = field(default_factory=list)
    arms: dict[str, _ArmRows] = field(default_factory=lambda: {a: _ArmRows() for a in ARMS})

    def steps(self, fields: Sequence[str] = ()) -> Steps:
        t = np.asarray(self.t, dtype=np.float64)
        bounds = _common_bounds([b for a in ARMS for b in self.arms[a].buckets if b is not None])
        built: dict[str, Arm] = {}
        for name in ARMS:
            rows = self.arms[name]
            cumulative = None if bounds is None else _bucket_matrix(rows.buckets, bounds)
            req, err, per_bucket = arm_increments(np.asarray(rows.requests), np.asarray(rows.errors), cumulative)
            built[name] = Arm(req, err, per_bucket)
        values = {f: (np.asarray(self.arms["canary"].fields.get(f, [math.nan] * len(t)), dtype=np.float64),
                      np.asarray(self.arms["baseline"].fields.get(f, [math.nan] * len(t)), dtype=np.float64))
                  for f in fields}
        return Steps(t, built["canary"], built["baseline"], None if bounds is None else np.asarray(bounds), values)


def _common_bounds(all_buckets: list[dict[float, float]]) -> list[float] | None:
    """Bounds present in every bucket set of the run (both arms); None when fewer than two."""
    if not all_buckets:
        return None
    common = set(all_buckets[0])
    for b in all_buckets[1:]:
        common &= set(b)
    return sorted(common) if len(common) >= 2 else None


def _bucket_matrix(rows: list[dict[float, float] | None], bounds: list[float]) -> np.ndarray:
    # A line without buckets repeats the previous cumulative values (no news), 0 before the first.
    out = np.zeros((len(rows), len(bounds)))
    last = np.zeros(len(bounds))
    for i, row in enumerate(rows):
        if row is not None:
            last = np.asarray([row[b] for b in bounds], dtype=np.float64)
        out[i] = last
    return out


def _count(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JudgeInputError([f"{where}: expected a number, got {_kind(value)}"])
    if not math.isfinite(value) or value < 0:
        raise JudgeInputError([f"{where}: expected a finite count >= 0, got {value!r}"])
    return float(value)


def _kind(value: Any) -> str:
    return "null" if value is None else {str: "a string", bool: "a boolean", list: "a list",
                                          dict: "an object"}.get(type(value), type(value).__name__)


def _buckets(raw: Any, where: str) -> dict[float, float] | None:
    if raw is None or (isinstance(raw, Mapping) and not raw):
        return None  # absent, or empty before the first request: no news, not "no buckets"
    if not isinstance(raw, Mapping):
        raise JudgeInputError([f"{where}: expected an object of le -> count, got {_kind(raw)}"])
    out: dict[float, float] = {}
    for key, value in raw.items():
        try:
            bound = float(key)
        except (TypeError, ValueError):
            raise JudgeInputError([f"{where}.{key}: le must be a number or +Inf"]) from None
        if math.isnan(bound) or bound == -math.inf:
            raise JudgeInputError([f"{where}.{key}: le must be a number or +Inf"])
        if bound in out:
            raise JudgeInputError([f"{where}.{key}: the same bound appears twice"])
        out[bound] = _count(value, f"{where}.{key}")
    return out


def _record(raw: Any, where: str, fields: Sequence[str]) -> tuple[Any, float, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        raise JudgeInputError([f"{where}: expected a JSON object, got {_kind(raw)}"])
    run = raw.get("run")
    if isinstance(run, bool) or not isinstance(run, str | int) or run == "":
        raise JudgeInputError([f"{where}: run: expected a non-empty string, got {_kind(run)}"])
    t = raw.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise JudgeInputError([f"{where}: t: expected seconds since the start (a number >= 0), got {t!r}"])
    arms: dict[str, Any] = {}
    for name in ARMS:
        arm = raw.get(name)
        if not isinstance(arm, Mapping):
            raise JudgeInputError([f"{where}: {name}: expected an object with requests and errors, got {_kind(arm)}"])
        parsed: dict[str, Any] = {
            "requests": _count(arm.get("requests"), f"{where}: {name}.requests"),
            "errors": _count(arm.get("errors"), f"{where}: {name}.errors"),
            "buckets": _buckets(arm.get("latency_buckets"), f"{where}: {name}.latency_buckets"),
        }
        for f in fields:
            value = arm.get(f)
            parsed[f] = math.nan if value is None else _reading(value, f"{where}: {name}.{f}")
        arms[name] = parsed
    return run, float(t), arms


def _reading(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise JudgeInputError([f"{where}: expected a number, got {_kind(value)}"])
    return float(value)


def _decode(item: Any, number: int) -> Any:
    if isinstance(item, bytes):
        item = item.decode("utf-8", errors="replace")
    if not isinstance(item, str):
        return item
    try:
        return json.loads(item)
    except json.JSONDecodeError as exc:
        raise JudgeInputError([f"line {number}: invalid JSON at column {exc.colno}: {exc.msg}"]) from None


def read_runs(lines: Iterable[Any], fields: Sequence[str] = ()) -> Iterator[RunRows]:
    """Validated runs, in input order. ``lines``: dicts, or JSON text lines (blank lines skipped).

    Raises JudgeInputError naming the line (1-based) and field for the first problem.
    """
    current: RunRows | None = None
    finished: set[str] = set()
    number = 0
    for number, item in enumerate(lines, start=1):
        if isinstance(item, str | bytes) and not item.strip():
            continue
        where = f"line {number}"
        run_id, t, arms = _record(_decode(item, number), where, fields)
        run = str(run_id)
        if current is not None and run != current.run:
            finished.add(current.run)
            yield current
            current = None
        if current is None:
            if run in finished:
                raise JudgeInputError([f"{where}: run {run!r} continues after other runs; "
                                       "the lines of a run must come together"])
            current = RunRows(run, number, run_id)
        elif t <= current.t[-1]:
            raise JudgeInputError([f"{where}: t: {t:g} is not after the previous t={current.t[-1]:g} "
                                   f"of run {run!r} (lines must be in time order)"])
        current.t.append(t)
        for name in ARMS:
            rows, parsed = current.arms[name], arms[name]
            rows.requests.append(parsed["requests"])
            rows.errors.append(parsed["errors"])
            rows.buckets.append(parsed["buckets"])
            for f in fields:
                rows.fields.setdefault(f, []).append(parsed[f])
    if current is not None:
        yield current
