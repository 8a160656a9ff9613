"""``analyzer report``: the HTML report of one rollout from a local store (and Prometheus)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from analyzer.local.events import events_path, read_events
from analyzer.local.store import LocalRolloutStore, StoreError
from analyzer.report import ReportError, Series, write_report
from analyzer.report.metrics import arms_from


def _labels(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            click.echo(f"{option}: expected LABEL=VALUE, got {p!r}", err=True)
            sys.exit(2)
        out[k.strip()] = v
    return out


@click.command()
@click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the local rollout store.")
@click.option("--name", required=True, help="The rollout's name.")
@click.option("--namespace", default="default", show_default=True)
@click.option("--prometheus", help="Prometheus base URL for the error-rate and latency plots.")
@click.option("--events", "events_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Events file (default: the store's DIR/<namespace>/<name>.events.jsonl).")
@click.option("--canary-label", multiple=True, help="LABEL=VALUE selecting the canary (default version=v2, "
                                                    "or spec.judge.canary).")
@click.option("--baseline-label", multiple=True, help="LABEL=VALUE selecting the baseline (default version=v1).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write index.html and the PNGs into.")
def report(store_dir: Path, name: str, namespace: str, prometheus: str | None, events_file: Path | None,
           canary_label: tuple[str, ...], baseline_label: tuple[str, ...], out_dir: Path) -> None:
    """Write an HTML report (with PNG plots) of one rollout and print its path.

    Exit 0 when written (missing metrics are stated in the page and on stderr), 2 for bad input
    (unknown rollout, unreadable store file, bad option)."""
    if not store_dir.is_dir():
        click.echo(f"{store_dir}: no such store directory", err=True)
        sys.exit(2)
    try:
        obj = LocalRolloutStore(store_dir).get(namespace, name)
    except StoreError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if obj is None:
        click.echo(f"rollout {namespace}/{name} not found in {store_dir}", err=True)
        sys.exit(2)
    events = read_events(events_file or events_path(store_dir, namespace, name))
    arms = arms_from(obj)
    if canary_label:
        arms["canary"] = _labels(canary_label, "--canary-label")
    if baseline_label:
        arms["baseline"] = _labels(baseline_label, "--baseline-label")
    source: str | Series = prometheus if prometheus else Series(problems=["no --prometheus given: no metric plots"])
    try:
        page = write_report(obj, events, source, out_dir, arms=arms)
    except (ReportError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if isinstance(source, Series):
        click.echo("warning: no --prometheus given: the report has no metric plots", err=True)
    click.echo(str(page))
