"""The ``analyzer plan`` command (registered in ``analyzer.cli`` with ``main.add_command(plan)``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from analyzer.argo.errors import TemplateError
from analyzer.argo.loader import load_documents
from analyzer.render import strict_json
from analyzer.rollout.plan import PlanError, PlanRow, plan_rollout
from analyzer.rollout.spec import load_rollout
from analyzer.routers import istio


def _bad_input(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(2)


def _objects(path: Path, kind: str) -> list[dict[str, Any]]:
    try:
        docs = load_documents(path)
    except TemplateError as exc:
        _bad_input(str(exc))
    wrong = [f"{path}: document[{i}]: expected a {kind}, got {d.get('kind')!r}"
             for i, d in enumerate(docs) if d.get("kind") != kind]
    if wrong:
        _bad_input("\n".join(wrong))
    return docs


def _route_text(vs: Mapping[str, Any], row: PlanRow) -> str:
    lines = []
    name = (vs.get("metadata") or {}).get("name", "?")
    for section in istio.SECTIONS:
        for i, r in enumerate(((vs.get("spec") or {}).get(section)) or []):
            dests = r.get("route") or []
            if len(dests) < 2 and r.get("name") not in row.routes:
                continue
            weights = " ".join(f"{(e.get('destination') or {}).get('host')}"
                               + (f"/{e['destination']['subset']}" if (e.get('destination') or {}).get('subset') else "")
                               + (f"={e['weight']}" if "weight" in e else "") for e in dests)
            label = f"{section}[{i}]" + (f" {r['name']}" if r.get("name") else "")
            mark = " (managed)" if r.get("name") in row.routes else ""
            lines.append(f"{name} {label}{mark}: {weights}")
    return "\n".join(lines)


def _table(rows: list[PlanRow]) -> Table:
    table = Table(title="rollout plan", title_justify="left")
    for col in ("step", "spec", "canary weight", "traffic"):
        table.add_column(col, overflow="fold")
    for row in rows:
        if row.virtualservices:
            traffic = "\n".join(t for t in (_route_text(v, row) for v in row.virtualservices) if t)
        else:
            traffic = "\n".join(f"{(i.get('metadata') or {}).get('name')}: canaryTrafficPercent="
                                f"{((i.get('spec') or {}).get('predictor') or {}).get('canaryTrafficPercent', '(removed)')}"
                                for i in row.inferenceservices)
        table.add_row(str(row.step), row.description, str(row.canary_weight), traffic)
    return table


@click.command()
@click.argument("rollout", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--virtualservice", "vs_file", type=click.Path(dir_okay=False, path_type=Path),
              help="File of Istio VirtualServices the rollout drives.")
@click.option("--inferenceservice", "isvc_file", type=click.Path(dir_okay=False, path_type=Path),
              help="File with the KServe InferenceService the rollout drives (instead of VirtualServices).")
@click.option("--stable", metavar="HOST", help="Stable destination host (overrides the rollout's).")
@click.option("--canary", metavar="HOST", help="Canary destination host (overrides the rollout's).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one element per step, then the promoted state.")
def plan(rollout: Path, vs_file: Path | None, isvc_file: Path | None, stable: str | None, canary: str | None,
         as_json: bool) -> None:
    """Preview what a ModelRollout or an Argo Rollout does to traffic, step by step (offline).

    Every analysis is assumed Successful, the canary is assumed to have the capacity it needs,
    and indefinite pauses are assumed promoted. With --json: one element per step,
    {"step", "step_spec", "canary_weight", "virtualservices": [every VirtualService of the file
    as it is after the step]}, then {"step": "promoted", ...}. Exit 2 on bad input.
    """
    if vs_file is None and isvc_file is None:
        _bad_input("give --virtualservice FILE (or --inferenceservice FILE)")
    if vs_file is not None and isvc_file is not None:
        _bad_input("give --virtualservice or --inferenceservice, not both")
    try:
        spec, warnings = load_rollout(rollout)
    except TemplateError as exc:
        _bad_input(str(exc))
    for w in warnings:
        click.echo(w.render(str(rollout)), err=True)
    vss = _objects(vs_file, "VirtualService") if vs_file is not None else []
    isvcs = _objects(isvc_file, "InferenceService") if isvc_file is not None else []
    try:
        rows = plan_rollout(spec, vss, isvcs, stable=stable, canary=canary)
    except PlanError as exc:
        _bad_input(f"{vs_file or isvc_file}: {exc}")
    if as_json:
        click.echo(strict_json([r.to_json() for r in rows]))
    else:
        Console(width=200 if not sys.stdout.isatty() else None).print(_table(rows))
