"""The ``analyzer`` command line.

Exit codes (decided once, see README): 0 Successful, 1 Failed or Error, 2 bad input or usage,
3 Inconclusive or undecided (e.g. a simulation that ran out of scripted results).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml
from rich.console import Console
from rich.live import Live

from analyzer.argo.compose import Lookup, compose
from analyzer.argo.errors import FieldError, TemplateError
from analyzer.argo.loader import load_documents
from analyzer.argo.templates import Template, merge_args, missing_args, parse_template
from analyzer.core.expressions import ExpressionError, evaluate_condition
from analyzer.core.model import RunStatus
from analyzer.render import status_table, strict_json

EXIT = {"Successful": 0, "Failed": 1, "Error": 1, "Inconclusive": 3}
err_console = Console(stderr=True)


def _bad_input(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(2)


def _exit_for(phase: str) -> int:
    return EXIT.get(phase, 3)


def _parse_kv(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            _bad_input(f"--arg: expected NAME=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    return out


class _LazyGroup(click.Group):
    """Subcommands whose modules are heavy (numpy, scipy) are imported only when used."""

    lazy = {"judge": ("analyzer.judge.cli", "judge"), "plan": ("analyzer.rollout.plan_cli", "plan"),
            "serve": ("analyzer.server.cli", "serve"),
            "run": ("analyzer.controller.daemon_cli", "run"),
            "report": ("analyzer.report.cli", "report"),
            "demo": ("analyzer.demo.cli", "demo"),
            # the rollout CLI (analyzer/rollout_cli): kubectl-style reads and the operator verbs
            **{verb: ("analyzer.rollout_cli.commands", verb)
               for verb in ("status", "promote", "abort", "retry", "pause", "resume")},
            "get": ("analyzer.rollout_cli.commands", "get_group"),
            "apply": ("analyzer.rollout_cli.commands", "apply"),
            "list": ("analyzer.rollout_cli.commands", "list_group")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, attr = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rollout-analyzer")
def main() -> None:
    """rollout-analyzer: Argo-compatible analysis and statistical canary judgement."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print errors only, not warnings.")
def lint(files: tuple[Path, ...], quiet: bool) -> None:
    """Check AnalysisTemplates / ClusterAnalysisTemplates / AnalysisRuns.

    Prints `file: field.path: reason` for every problem; exit 2 if any is an error.
    """
    failed = False
    library = _library([p for f in files for p in _neighbours(f, ())] if files else [])
    for f in files:
        problems: list[FieldError] = []
        try:
            docs = load_documents(f)
            multi = len(docs) > 1
            for i, doc in enumerate(docs):
                try:
                    t = parse_template(doc, str(f))
                    problems += [_prefixed(w, i, multi) for w in t.warnings]
                    problems += [_prefixed(e, i, multi) for e in _composition_problems(t, library, str(f))]
                except TemplateError as exc:
                    problems += [_prefixed(e, i, multi) for e in exc.errors]
        except TemplateError as exc:
            problems = exc.errors
        errors = [p for p in problems if not p.warning]
        failed = failed or bool(errors)
        for p in problems:
            if p.warning and quiet:
                continue
            click.echo(p.render(str(f)), err=True)
        if not errors:
            click.echo(f"{f}: ok")
    sys.exit(2 if failed else 0)


def _composition_problems(t: Template, library: Lookup, source: str) -> list[FieldError]:
    if not t.template_refs:
        return []
    try:
        compose(t, library, source)
    except TemplateError as exc:
        # A reference outside the linted files cannot be checked here; anything else is an error.
        return [FieldError(e.path, e.reason + "; not checked", warning=True) if "not found" in e.reason else e
                for e in exc.errors]
    return []


def _prefixed(e: FieldError, i: int, multi: bool) -> FieldError:
    if not multi:
        return e
    return FieldError(f"document[{i}]." + e.path if e.path else f"document[{i}]", e.reason, e.warning)


@main.command("expr")
@click.argument("expression")
@click.option("--result", "result_json", default="null", show_default=True,
              help="The provider result as JSON (a list for a Prometheus vector, a number for a scalar).")
@click.option("--raw", is_flag=True, help="Treat --result as a raw string body (web provider, non-JSON).")
def expr_cmd(expression: str, result_json: str, raw: bool) -> None:
    """Evaluate one success/failure condition. Prints true/false; exit 0 true, 1 false, 2 error."""
    if raw:
        result: Any = result_json
    else:
        try:
            result = json.loads(result_json)
        except json.JSONDecodeError as exc:
            _bad_input(f"--result: invalid JSON at column {exc.colno}: {exc.msg}")
    try:
        ok = evaluate_condition(expression, result)
    except ExpressionError as exc:
        _bad_input(f"error: {exc}")
    click.echo("true" if ok else "false")
    sys.exit(0 if ok else 1)


def _library(paths: list[Path]) -> Lookup:
    """Templates that ``spec.templates[]`` may name: every parsable one in the given files."""
    found: dict[tuple[str, bool], Template] = {}
    for p in paths:
        try:
            docs = load_documents(p)
        except TemplateError:
            continue
        for d in docs:
            try:
                t = parse_template(d, str(p))
            except TemplateError:
                continue
            found.setdefault((t.name, t.kind == "ClusterAnalysisTemplate"), t)
    return lambda name, cluster: found.get((name, cluster))


def _neighbours(path: Path, extra: tuple[Path, ...]) -> list[Path]:
    files = [path, *extra] if path.exists() else list(extra)
    for d in {path.parent, *(e for e in extra if e.is_dir())}:
        files += sorted(p for p in d.glob("*.y*ml") if p.is_file())
    return [f for f in files if f.is_file()]


def _load_template(path: Path, supplied: Mapping[str, str], time_scale: float = 1.0,
                   library: tuple[Path, ...] = ()) -> tuple[Template, Any]:
    try:
        docs = load_documents(path)
        templates = [d for d in docs if d.get("kind") in ("AnalysisTemplate", "ClusterAnalysisTemplate",
                                                           "AnalysisRun") or "metrics" in d]
        if not templates:
            raise TemplateError(str(path), [FieldError("kind", "no AnalysisTemplate in this file")])
        if len(templates) > 1:
            raise TemplateError(str(path), [FieldError("", "several templates in one file: pass one")])
        t = parse_template(templates[0], str(path), bare_ok=True)
        for w in t.warnings:
            err_console.print(f"[yellow]{w.render(str(path))}[/]", highlight=False)
        t = compose(t, _library(_neighbours(path, library)), str(path))
    except TemplateError as exc:
        _bad_input(str(exc))
    spec, unknown = merge_args(t, supplied, time_scale)
    for name in unknown:
        err_console.print(f"[yellow]--arg {name}: the template declares no such argument (ignored)[/]")
    missing = missing_args(spec)
    if missing:
        _bad_input(f"{path}: spec.args: no value for " + ", ".join(missing)
                   + " (supply with " + " ".join(f"--arg {m}=..." for m in missing) + ")")
    return t, spec


@main.command()
@click.argument("template", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--results", "results_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML/JSON: metric name -> list of {value: X} or {error: msg}, consumed in order.")
@click.option("--arg", "args", multiple=True, help="NAME=VALUE for a template argument (repeatable).")
@click.option("--terminate-after", type=int, default=None, help="Set spec.terminate after N rounds.")
@click.option("--json", "as_json", is_flag=True, help="Print the AnalysisRun status as JSON.")
@click.option("--templates", "library", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="File or directory with templates that spec.templates[] names (repeatable; "
                   "the template's own directory is always searched).")
def simulate(template: Path, results_file: Path, args: tuple[str, ...], terminate_after: int | None,
             as_json: bool, library: tuple[Path, ...]) -> None:
    """Run a template on a virtual clock against scripted provider results."""
    from analyzer.simulation import simulate as run_simulation

    supplied = _parse_kv(args)
    t, _ = _load_template(template, supplied, library=library)
    try:
        results = yaml.safe_load(results_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        _bad_input(f"{results_file}: cannot read results: {exc}")
    if not isinstance(results, Mapping) or not all(isinstance(v, list) for v in results.values()):
        _bad_input(f"{results_file}: expected a mapping of metric name -> list of {{value: X}} / {{error: msg}}")
    names = {str(m.get("name")) for m in t.spec.metrics}
    raw = {"spec": {"metrics": list(t.spec.metrics),
                    "args": [_arg_json(a) for a in t.spec.args],
                    "dryRun": [{"metricName": p} for p in t.spec.dry_run],
                    "measurementRetention": [{"metricName": p, "limit": n} for p, n in t.spec.retention]}}
    for name in results:
        if name not in names:
            _bad_input(f"{results_file}: {name}: no metric of that name in {template}")
    try:
        status = run_simulation(raw, results, args=supplied, terminate_after=terminate_after)
    except TemplateError as exc:
        _bad_input(str(exc))
    _print_final(status, as_json)


def _arg_json(a: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name}
    if a.value is not None:
        out["value"] = a.value
    if a.secret_name is not None:
        out["valueFrom"] = {"secretKeyRef": {"name": a.secret_name, "key": a.secret_key}}
    return out


def _print_final(status: dict[str, Any], as_json: bool) -> NoReturn:
    if as_json:
        click.echo(strict_json(status))
    else:
        Console(width=None if sys.stdout.isatty() else 120).print(status_table(status))
        click.echo(f"phase: {status['phase'] or 'Running'}")
        if status.get("message"):
            click.echo(f"message: {status['message']}")
    sys.exit(_exit_for(status["phase"]))


@main.command()
@click.argument("template", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prometheus", "prometheus_url", default=None,
              help="Prometheus base URL; replaces the address of every prometheus metric.")
@click.option("--arg", "args", multiple=True, help="NAME=VALUE for a template argument (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the final AnalysisRun status as JSON.")
@click.option("--speed", type=click.FloatRange(min=1.0), default=1.0, show_default=True,
              help="Divide every interval and delay by this factor (demos and tests).")
@click.option("--templates", "library", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="File or directory with templates that spec.templates[] names (repeatable).")
def analyze(template: Path, prometheus_url: str | None, args: tuple[str, ...], as_json: bool, speed: float,
            library: tuple[Path, ...]) -> None:
    """Run an AnalysisRun live with its real intervals. Ctrl-C terminates it like spec.terminate."""
    from analyzer.controller.analysis_runner import run_analysis
    from analyzer.controller.clock import SystemClock
    from analyzer.controller.providers import default_providers

    supplied = _parse_kv(args)
    if prometheus_url is not None and not prometheus_url.startswith(("http://", "https://")):
        _bad_input(f"--prometheus: expected an http(s) URL, got {prometheus_url!r}")
    t, spec = _load_template(template, supplied, speed, library)
    if prometheus_url:
        spec = _with_prometheus(spec, prometheus_url)
    status = asyncio.run(_analyze(spec, prometheus_url, as_json, run_analysis, SystemClock(), default_providers))
    _print_final(status.to_json(), as_json)


def _with_prometheus(spec: Any, url: str) -> Any:
    from dataclasses import replace

    metrics = []
    for m in spec.metrics:
        prov = m.get("provider")
        if isinstance(prov, Mapping) and isinstance(prov.get("prometheus"), Mapping):
            m = {**m, "provider": {**prov, "prometheus": {**prov["prometheus"], "address": url}}}
        metrics.append(m)
    return replace(spec, metrics=tuple(metrics))


async def _analyze(spec: Any, prometheus_url: str | None, as_json: bool, run_analysis: Any, clock: Any,
                   default_providers: Any) -> RunStatus:
    terminate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_interrupt() -> None:
        if terminate.is_set():
            raise KeyboardInterrupt
        err_console.print("[yellow]terminating the run (Ctrl-C again to quit at once)...[/]")
        terminate.set()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    loop.add_signal_handler(signal.SIGTERM, on_interrupt)
    providers = default_providers(prometheus_url)
    if as_json or not sys.stdout.isatty():
        seen: dict[str, int] = {}

        def log(status: RunStatus) -> None:
            for r in status.metric_results:
                total = r.trimmed + len(r.measurements)
                for m in r.measurements[len(r.measurements) - (total - seen.get(r.name, 0)):]:
                    err_console.print(f"{m.finished_at:%H:%M:%S} {r.name}: {m.phase} value={m.value} "
                                      f"{m.message}".rstrip(), highlight=False, soft_wrap=True)
                seen[r.name] = total
        return await run_analysis(spec, providers, clock, terminate=terminate, on_update=log)  # type: ignore[no-any-return]
    with Live(status_table(RunStatus()), refresh_per_second=4, transient=True) as live:
        return await run_analysis(spec, providers, clock, terminate=terminate,  # type: ignore[no-any-return]
                                  on_update=lambda s: live.update(status_table(s)))


if __name__ == "__main__":
    main()
