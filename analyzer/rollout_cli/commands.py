"""``analyzer get rollout``, ``list rollouts``, ``status`` and the operator verbs (``promote``,
``abort``, ``retry``, ``pause``, ``resume``), with kubectl's connection options.

The verbs only write a request into the rollout's spec through
:func:`analyzer.controller.actions.request`; the controller acts on it (so they work while the
controller is down, and take effect when it runs). ``status`` waits for the controller's verdict.

Exit codes: 0 done / Healthy, 1 Degraded (``status``), 2 bad input or usage (unknown rollout, no
cluster, bad kubeconfig, API error), 3 ``status`` timed out, 130 interrupted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from analyzer.controller.actions import request
from analyzer.rollout_cli.connect import Connection, actor, connection_options, errors, fail
from analyzer.rollout_cli.view import finished, list_table, phase, progress_line, rollout_view

EXIT_INTERRUPTED = 130
POLL = 1.0  # seconds between reads while waiting (get -w, status)


class _AliasGroup(click.Group):
    """A group whose subcommands also answer to kubectl-style short and plural names."""

    aliases: dict[str, str] = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))


class _GetGroup(_AliasGroup):
    aliases = {"rollouts": "rollout", "ro": "rollout", "mro": "rollout", "modelrollout": "rollout",
               "modelrollouts": "rollout"}


class _ListGroup(_AliasGroup):
    aliases = {"rollout": "rollouts", "ro": "rollouts", "mro": "rollouts", "modelrollout": "rollouts",
               "modelrollouts": "rollouts"}


def _console() -> Console:
    out = Console()
    # A pipe or file gets no terminal width; do not wrap tables at 80 columns there.
    return out if out.is_terminal else Console(width=160)


def _get(conn_store: Any, namespace: str, name: str) -> dict[str, Any]:
    with errors():
        obj: dict[str, Any] | None = conn_store.get(namespace, name)
    if obj is None:
        fail(f"rollout {namespace}/{name} not found")
    return obj


def _poll_option(f: Any) -> Any:
    return click.option("--poll-interval", type=click.FloatRange(min=0.05), default=POLL, hidden=True,
                        help="Seconds between reads while waiting.")(f)


def _emit_object(obj: Any, output: str) -> None:
    if output == "json":
        from analyzer.render import strict_json

        click.echo(strict_json(obj))
    else:
        import yaml

        click.echo(yaml.safe_dump(obj, sort_keys=False), nl=False)


# ------------------------------------------------------------------ get / list


@click.group("get", cls=_GetGroup)
def get_group() -> None:
    """Show a rollout (kubectl-style: analyzer get rollout NAME)."""


@get_group.command("rollout")
@click.argument("name")
@click.option("-w", "--watch", is_flag=True, help="Keep showing the rollout as it changes, until it completes or Ctrl-C.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@connection_options
@_poll_option
def get_rollout(name: str, watch: bool, output: str, poll_interval: float, **kw: Any) -> None:
    """Summary, steps and analysis runs of rollout NAME."""
    store, namespace = Connection.from_options(kw).open()
    obj = _get(store, namespace, name)
    if output != "table":
        _emit_object(obj, output)
        return
    console = _console()
    if not watch:
        console.print(rollout_view(obj))
        return
    try:
        if console.is_terminal:
            with Live(rollout_view(obj), console=console, auto_refresh=False) as live:
                while not finished(obj):
                    time.sleep(poll_interval)
                    obj = _get(store, namespace, name)
                    live.update(rollout_view(obj), refresh=True)
        else:  # a pipe: print the whole view again each time it changes
            console.print(rollout_view(obj))
            version = _version(obj)
            while not finished(obj):
                time.sleep(poll_interval)
                obj = _get(store, namespace, name)
                if _version(obj) != version:
                    version = _version(obj)
                    console.rule()
                    console.print(rollout_view(obj))
    except KeyboardInterrupt:
        sys.exit(0)


def _version(obj: Mapping[str, Any]) -> Any:
    return (obj.get("metadata") or {}).get("resourceVersion")


@click.group("list", cls=_ListGroup)
def list_group() -> None:
    """List rollouts (analyzer list rollouts [-A])."""


@list_group.command("rollouts")
@click.option("-A", "--all-namespaces", is_flag=True, help="Rollouts of every namespace.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@connection_options
def list_rollouts(all_namespaces: bool, output: str, **kw: Any) -> None:
    """Every rollout of the namespace: phase, step, weights, age, message."""
    store, namespace = Connection.from_options(kw).open()
    with errors():
        objs = store.list(None if all_namespaces else namespace)
    objs.sort(key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), (o.get("metadata") or {}).get("name", "")))
    if output != "table":
        _emit_object({"apiVersion": "v1", "kind": "List", "items": objs}, output)
        return
    if not objs:
        where = "any namespace" if all_namespaces else f"namespace {namespace}"
        click.echo(f"No rollouts found in {where}.", err=True)
        return
    _console().print(list_table(objs, all_namespaces))


# ------------------------------------------------------------------ status


@click.command("status")
@click.argument("name")
@click.option("--timeout", default="0", show_default=True, metavar="DURATION",
              help="Give up after this long (Go duration: 30s, 5m, 1h); 0 waits forever.")
@connection_options
@_poll_option
def status(name: str, timeout: str, poll_interval: float, **kw: Any) -> None:
    """Wait for rollout NAME to finish, printing its progress when it changes.

    Exit 0 when it is Healthy, 1 when it is Degraded, 3 when the timeout passes first."""
    from analyzer.core.durations import parse_go_duration_seconds

    try:
        limit = parse_go_duration_seconds(timeout)
    except ValueError as exc:
        fail(f"--timeout: {exc}")
    if limit < 0:
        fail(f"--timeout: must not be negative, got {timeout}")
    conn = Connection.from_options(kw)
    store, namespace = conn.open()
    obj = _get(store, namespace, name)
    deadline = time.monotonic() + limit if limit > 0 else None
    last_line, last_problem = "", ""
    try:
        while True:
            line = progress_line(obj)
            if line != last_line:
                click.echo(line)
                last_line = line
            if finished(obj):
                sys.exit(0 if phase(obj) == "Healthy" else 1)
            if deadline is not None and time.monotonic() >= deadline:
                click.echo(f"timed out after {timeout}: rollout {namespace}/{name} is {phase(obj)}", err=True)
                sys.exit(3)
            wait = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic()))
            time.sleep(wait)
            try:
                fresh = store.get(namespace, name)
            except Exception as exc:  # the API server may blip while we wait: say so once, keep waiting
                problem = " ".join(str(exc).split()) or type(exc).__name__
                if problem != last_problem:
                    click.echo(f"warning: reading {namespace}/{name}: {problem} (still waiting)", err=True)
                    last_problem = problem
                continue
            if fresh is None:
                fail(f"rollout {namespace}/{name} was deleted")
            obj, last_problem = fresh, ""
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


# ------------------------------------------------------------------ the operator verbs


def _verb_command(verb: str, help_text: str, *, with_full: bool = False) -> click.Command:
    def run(name: str, full: bool = False, **kw: Any) -> None:
        store, namespace = Connection.from_options(kw).open()
        with errors():
            result = request(store, namespace, name, "promote-full" if full else verb, actor=actor())
        if result.update_hash:
            click.echo(result.describe())
        else:
            click.echo(f"{result.verb} requested on {namespace}/{name} by {result.actor} (the controller has not started it yet)")

    run.__doc__ = help_text
    cmd: Any = connection_options(run)
    if with_full:
        cmd = click.option("--full", is_flag=True, help="Skip the remaining steps and analyses: all traffic to the canary.")(cmd)
    cmd = click.argument("name")(cmd)
    return click.command(verb)(cmd)


promote = _verb_command("promote", "Move rollout NAME past its current pause or step (--full: to 100 % at once).",
                        with_full=True)
abort = _verb_command("abort", "Abort rollout NAME: all traffic back to stable, analyses stopped.")
retry = _verb_command("retry", "Start an aborted rollout NAME again from its first step (new analysis runs).")
pause = _verb_command("pause", "Pause rollout NAME where it is (spec.paused); traffic stays as it is.")
resume = _verb_command("resume", "Resume a paused rollout NAME (also ends a pause step or an Inconclusive pause).")


# ------------------------------------------------------------------ local store: create / update


@click.command("apply")
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ModelRollout manifest (YAML; several documents allowed). Repeatable.")
@click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False),
              help="The local rollout store (in Kubernetes, use kubectl apply).")
@click.option("-n", "--namespace", default=None, metavar="NS",
              help="Namespace for manifests that name none (default: 'default').")
def apply(files: tuple[Path, ...], store_dir: str, namespace: str | None) -> None:
    """Create or update ModelRollouts in the local store (the spec; the status is the controller's).

    Every manifest is checked first (errors name the file, field and reason) and nothing is
    written unless all of them are valid."""
    from analyzer.argo.errors import TemplateError
    from analyzer.argo.loader import load_documents
    from analyzer.local.store import LocalRolloutStore
    from analyzer.rollout.spec import parse_rollout

    docs: list[tuple[Path, dict[str, Any]]] = []
    with errors():
        for path in files:
            try:
                loaded = load_documents(path)
            except TemplateError as exc:
                fail(str(exc))
            for doc in loaded:
                if not isinstance(doc, dict):
                    continue
                doc = dict(doc)
                meta = dict(doc.get("metadata") or {})
                meta.setdefault("namespace", namespace or "default")
                doc["metadata"] = meta
                try:
                    parse_rollout(doc, str(path))
                except TemplateError as exc:
                    fail(str(exc))
                docs.append((path, doc))
        store = LocalRolloutStore(store_dir)
        for path, doc in docs:
            stored = store.apply(doc, source=str(path))
            meta = stored["metadata"]
            click.echo(f"modelrollout {meta['namespace']}/{meta['name']} applied (generation {meta.get('generation')})")
