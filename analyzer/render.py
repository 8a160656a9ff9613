"""Showing an AnalysisRun status to people (rich tables) and to machines (strict JSON)."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.table import Table
from rich.text import Text

from analyzer.core.model import RunStatus

PHASE_STYLE = {"Successful": "green", "Failed": "red", "Error": "red", "Inconclusive": "yellow",
               "Running": "cyan", "Pending": "dim"}


def strict_json(obj: Any) -> str:
    """JSON with no bare NaN/Infinity tokens: non-finite floats become the strings Go prints."""
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(obj), indent=2, allow_nan=False)


def status_table(status: RunStatus | dict[str, Any], title: str = "AnalysisRun") -> Table:
    data = status.to_json() if isinstance(status, RunStatus) else status
    phase = data.get("phase") or "Running"
    table = Table(title=f"{title}: [{PHASE_STYLE.get(phase, '')}]{phase}[/]", title_justify="left")
    for col in ("metric", "phase", "count", "ok", "failed", "inconcl.", "errors", "last value", "message"):
        table.add_column(col, overflow="fold")
    for r in data.get("metricResults", []):
        last = r["measurements"][-1] if r["measurements"] else {}
        table.add_row(
            r["name"] + (" (dry-run)" if r.get("dryRun") else ""),
            Text(r["phase"], style=PHASE_STYLE.get(r["phase"], "")),
            str(r["count"]), str(r["successful"]), str(r["failed"]), str(r["inconclusive"]), str(r["error"]),
            str(last.get("value", "")), r.get("message") or last.get("message", ""),
        )
    return table
