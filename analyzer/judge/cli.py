"""``analyzer judge``: replay recorded series, or judge live from Prometheus.

Exit codes (README): 0 pass, 1 fail (roll back), 2 bad input, 3 inconclusive; with several runs
the worst one wins (fail over inconclusive over pass).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from analyzer.core.stats import Decision, Verdict
from analyzer.core.stats import judge as run_judge
from analyzer.judge import iter_verdicts
from analyzer.judge.config import JudgeConfig, live_problems, load_config
from analyzer.judge.errors import JudgeInputError

EXIT = {Decision.PASS: 0, Decision.FAIL: 1, Decision.INCONCLUSIVE: 3}
_SEVERITY = {0: 0, 3: 1, 1: 2}  # pass < inconclusive < fail
COLOURS = {Decision.PASS: "green", Decision.FAIL: "red", Decision.INCONCLUSIVE: "yellow"}


def _bad_input(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(2)


@click.command("judge")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Judge config (YAML): alpha, horizon, metrics. See policies/README.md.")
@click.option("--series", "series_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Recorded data to replay: JSON lines in the series format ('-' reads stdin).")
@click.option("--prometheus", "prometheus_url", help="Judge live: Prometheus base URL.")
@click.option("--since", help="Live: analysis start (RFC 3339, unix seconds, or a duration ago such as 30m).")
@click.option("--now", "now_text", help="Live: evaluate as of this time instead of the clock (same formats).")
@click.option("--run", "run_id", default="live", show_default=True, help="Live: the run id in the output.")
@click.option("--json", "as_json", is_flag=True, help="Print one strict JSON object per run (JSON lines).")
@click.option("--details", is_flag=True, help="With --json: add per-metric evidence, effects, traffic needed.")
def judge(config_path: Path, series_path: Path | None, prometheus_url: str | None, since: str | None,
          now_text: str | None, run_id: str, as_json: bool, details: bool) -> None:
    """Judge a canary against its baseline with anytime-valid sequential tests.

    Replay: --config FILE --series FILE. Live: --config FILE --prometheus URL --since TIME.
    Exit 0 pass, 1 fail (roll back), 2 bad input, 3 inconclusive; several runs: the worst.
    """
    if (series_path is None) == (prometheus_url is None):
        _bad_input("judge: give either --series FILE (replay) or --prometheus URL --since TIME (live)")
    if series_path is not None and (since or now_text):
        _bad_input("judge: --since and --now only apply with --prometheus")
    try:
        config = load_config(config_path)
    except JudgeInputError as exc:
        _bad_input(str(exc))
    if series_path is not None:
        worst = _replay(config, series_path, as_json, details)
    else:
        assert prometheus_url is not None
        worst = _live(config, config_path, prometheus_url, since, now_text, run_id, as_json, details)
    sys.exit(worst)


def _emit(run: object, verdict: Verdict, as_json: bool, details: bool) -> None:
    if as_json:
        click.echo(json.dumps(verdict.to_json(run, details), allow_nan=False))
        return
    colour = COLOURS[verdict.decision]
    when = "" if verdict.decided_at is None else f" at t={verdict.decided_at:g} s"
    metric = "" if verdict.metric is None else f" ({verdict.metric})"
    click.echo(click.style(f"{run}: {verdict.decision.value}{when}{metric}", fg=colour, bold=True))
    for reason in verdict.reasons:
        click.echo(f"  - {reason}")


def _replay(config: JudgeConfig, path: Path, as_json: bool, details: bool) -> int:
    source = "<stdin>" if str(path) == "-" else str(path)
    worst, runs = 0, 0
    try:
        handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except OSError as exc:
        _bad_input(f"{source}: cannot read file: {exc.strerror or exc}")
    try:
        with handle:
            for run, verdict in iter_verdicts(config, handle):
                runs += 1
                _emit(run, verdict, as_json, details)
                code = EXIT[verdict.decision]
                worst = max(worst, code, key=lambda c: _SEVERITY[c])
    except JudgeInputError as exc:
        _bad_input(str(exc.with_source(source)))
    except UnicodeDecodeError:
        _bad_input(f"{source}: file is not UTF-8 text")
    if runs == 0:
        _bad_input(f"{source}: no series lines (expected JSON lines with run, t, baseline, canary)")
    return worst


def _live(config: JudgeConfig, config_path: Path, url: str, since: str | None, now_text: str | None,
          run_id: str, as_json: bool, details: bool) -> int:
    from analyzer.judge.live import LiveError, fetch_steps, parse_time

    problems = live_problems(config)
    if problems:
        _bad_input("\n".join(f"{config_path}: {p}" for p in problems))
    if not url.startswith(("http://", "https://")):
        _bad_input(f"--prometheus: expected an http(s) URL, got {url!r}")
    if since is None:
        _bad_input("judge: --prometheus needs --since TIME (the analysis start)")
    try:
        now = parse_time(now_text, None, "--now") if now_text else None
        start = parse_time(since, now, "--since")
    except ValueError as exc:
        _bad_input(str(exc))
    try:
        steps, now_used = fetch_steps(config, url, start, now)
    except LiveError as exc:
        click.echo(f"judge: {exc}", err=True)
        sys.exit(3)  # could not decide: not a pass, not bad input
    if now_used <= start:
        _bad_input(f"--since: {since!r} is not before now")
    verdict = run_judge(steps, config.spec)
    _emit(run_id, verdict, as_json, details)
    return EXIT[verdict.decision]


if __name__ == "__main__":  # `python -m analyzer.judge.cli ...` works before/without registration
    judge()
