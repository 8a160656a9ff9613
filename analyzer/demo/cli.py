"""``analyzer demo``: the local end-to-end canary (see analyzer/demo/rollout_demo.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the stores and reports go (default: a new temporary directory).")
@click.option("--no-live", is_flag=True, help="No live view (for logs and CI): print the summary only.")
@click.option("--scenario", "names", multiple=True, type=click.Choice(["good-v2", "bad-v2"]),
              help="Run only these scenarios (repeatable; default: both).")
def demo(out_dir: Path | None, no_live: bool, names: tuple[str, ...]) -> None:
    """Two canary rollouts on this machine: HAProxy, Prometheus, two model servers, the judge.

    A good v2 is promoted step by step (5 -> 25 -> 50 -> 100 %); a bad v2 (+2 points of errors,
    +30 % latency) is caught by the judge and rolled back by the controller. Prints where the
    HTML reports are. Needs the `prometheus` and `haproxy` binaries (make demo installs them)."""
    from analyzer.demo.rollout_demo import SCENARIOS, main
    from analyzer.localhaproxy import haproxy_available
    from analyzer.localprom import prometheus_available

    missing = [b for b, ok in (("prometheus", prometheus_available()), ("haproxy", haproxy_available())) if not ok]
    if missing:
        click.echo(f"demo: {' and '.join(missing)} not on PATH: install with "
                   f"`sudo apt-get install -y {' '.join(missing)}` (make demo does this)", err=True)
        sys.exit(2)
    chosen = tuple(s for s in SCENARIOS if not names or s.name in names)
    sys.exit(main(out_dir, live_view=not no_live, scenarios=chosen))
