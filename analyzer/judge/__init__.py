"""The statistical canary judge's adapters: config, series replay, Prometheus, CLI.

Python API::

    from analyzer.judge import judge_series
    results = judge_series(config, lines)   # one dict per run, in input order

``config`` is the judge config as a dict (the YAML's content), ``lines`` the series format:
dicts, or JSON text lines. Bad input raises ``JudgeInputError`` (a ValueError) naming the
line or field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from analyzer.core.stats import Verdict, judge
from analyzer.judge.config import JudgeConfig, load_config, parse_config
from analyzer.judge.errors import JudgeInputError
from analyzer.judge.series import read_runs

__all__ = ["JudgeConfig", "JudgeInputError", "iter_verdicts", "judge_series", "load_config", "parse_config"]


def _config(config: Mapping[str, Any] | JudgeConfig) -> JudgeConfig:
    return config if isinstance(config, JudgeConfig) else parse_config(config)


def iter_verdicts(config: Mapping[str, Any] | JudgeConfig, lines: Iterable[Any]) -> Iterator[tuple[Any, Verdict]]:
    """(run id as given, Verdict) per run as soon as its lines are read (streaming)."""
    cfg = _config(config)
    for rows in read_runs(lines, cfg.series_fields):
        yield rows.run_id, judge(rows.steps(cfg.series_fields), cfg.spec)


def judge_series(config: Mapping[str, Any] | JudgeConfig, lines: Iterable[Any], *,
                 details: bool = False) -> list[dict[str, Any]]:
    """Judge every run of a series: ``[{"run", "decision", "decided_at", "metric", "reasons"}, ...]``.

    ``decision`` is "fail" (roll back; ``decided_at`` is the first time the evidence sufficed),
    "pass" (at the horizon) or "inconclusive". ``details=True`` adds structured per-metric
    reports (samples, evidence, effect with interval, traffic still needed) under "details".
    """
    return [verdict.to_json(run, details) for run, verdict in iter_verdicts(config, lines)]
