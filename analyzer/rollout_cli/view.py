"""How a rollout looks to a person: the summary, its steps, its analysis runs, the list of rollouts,
and the one-line progress that ``analyzer status`` prints when it changes.

Everything here reads the stored object (``spec`` as the user wrote it, ``status`` as the controller
wrote it, shape in ``analyzer/rollout/status.py``); nothing is computed that the controller did not
record, so what is shown is what the controller decided.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

PHASE_STYLE = {"Healthy": "green", "Degraded": "red", "Paused": "yellow", "Progressing": "cyan",
               "Successful": "green", "Failed": "red", "Error": "red", "Inconclusive": "yellow",
               "Running": "cyan", "Pending": "dim"}
DONE_PHASES = ("Healthy", "Degraded")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _steps(obj: Mapping[str, Any]) -> list[Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Rollout":  # an Argo Rollout: steps under the canary strategy
        spec = ((spec.get("strategy") or {}).get("canary") or {})
    steps = spec.get("steps")
    return steps if isinstance(steps, list) else []


def observed(obj: Mapping[str, Any]) -> bool:
    """The controller has seen the latest spec (a verb or an edit bumps ``generation``)."""
    gen = _meta(obj).get("generation")
    seen = _status(obj).get("observedGeneration")
    if not isinstance(gen, int):
        return True
    return isinstance(seen, int) and seen >= gen


def phase(obj: Mapping[str, Any]) -> str:
    """The phase, or "Pending" while the controller has not written a status yet."""
    return str(_status(obj).get("phase") or "Pending")


def finished(obj: Mapping[str, Any]) -> bool:
    """Healthy or Degraded, and for the current spec (not an earlier update's verdict)."""
    return phase(obj) in DONE_PHASES and observed(obj)


def age(timestamp: Any, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 12m, 3h, 5d."""
    if not timestamp:
        return ""
    try:
        t = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    secs = max(0, int(((now or datetime.now(UTC)) - t).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def describe_step(step: Any) -> str:
    """``setWeight: 25``, ``pause: 10m``, ``pause: until promoted``, ``analysis: success-rate``."""
    if not isinstance(step, Mapping) or not step:
        return json.dumps(step)
    kind, value = next(iter(step.items()))
    if kind == "setWeight":
        return f"setWeight: {value}"
    if kind == "pause":
        duration = value.get("duration") if isinstance(value, Mapping) else None
        return f"pause: {duration}" if duration not in (None, "") else "pause: until promoted"
    if kind == "analysis" and isinstance(value, Mapping):
        names = [str(t.get("templateName") or t.get("clusterTemplateName") or "?")
                 for t in value.get("templates") or [] if isinstance(t, Mapping)]
        return "analysis: " + (", ".join(names) or "(no templates)")
    if kind in ("setHeaderRoute", "setMirrorRoute") and isinstance(value, Mapping):
        return f"{kind}: {value.get('name', '')}" + ("" if value.get("match") else " (remove)")
    if kind == "setCanaryScale" and isinstance(value, Mapping):
        inner = ", ".join(f"{k}={v}" for k, v in value.items())
        return f"setCanaryScale: {inner}"
    return f"{kind}: {json.dumps(value, separators=(',', ':'))}"


def step_position(obj: Mapping[str, Any]) -> str:
    """``2/5`` (steps done / total), ``-`` before the controller started."""
    total = len(_steps(obj))
    idx = _status(obj).get("currentStepIndex")
    if not isinstance(idx, int):
        return f"-/{total}"
    return f"{min(idx, total)}/{total}"


def _weights(obj: Mapping[str, Any]) -> tuple[Any, Any]:
    w = _status(obj).get("weights") or {}
    return w.get("desired"), w.get("verified")


def progress_line(obj: Mapping[str, Any]) -> str:
    """One line that changes exactly when something a person waits for changes."""
    st = _status(obj)
    desired, verified = _weights(obj)
    parts = [phase(obj), f"step {step_position(obj)}"]
    if desired is not None:
        parts.append(f"weight {desired}" + (f" (verified {verified})" if verified is not None else " (unverified)"))
    if not observed(obj):
        parts.append("spec change not yet seen by the controller")
    line = ", ".join(parts)
    message = st.get("abortMessage") if st.get("abort") else st.get("message")
    return f"{line}: {message}" if message else line


def summary(obj: Mapping[str, Any]) -> Table:
    meta, st = _meta(obj), _status(obj)
    spec = obj.get("spec") or {}
    desired, verified = _weights(obj)
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    p = phase(obj)
    t.add_row("Name:", str(meta.get("name", "")))
    t.add_row("Namespace:", str(meta.get("namespace", "")))
    t.add_row("Status:", Text(p, style=PHASE_STYLE.get(p, "")) + Text(f"  {st.get('message') or ''}".rstrip()))
    if st.get("abort"):
        t.add_row("Aborted:", str(st.get("abortMessage") or "yes"))
    for pc in st.get("pauseConditions") or []:
        if isinstance(pc, Mapping):
            t.add_row("Paused:", f"{pc.get('reason', '')} since {pc.get('startTime', '')}"
                      + (f": {pc['message']}" if pc.get("message") else ""))
    if spec.get("paused"):
        t.add_row("Paused:", "spec.paused is set (resume to continue)")
    t.add_row("Step:", step_position(obj))
    t.add_row("Canary weight:", f"desired {desired if desired is not None else '-'}, "
              f"verified {verified if verified is not None else '-'}"
              + (f" at {(st.get('weights') or {}).get('verifiedAt')}" if (st.get("weights") or {}).get("verifiedAt") else ""))
    for problem in st.get("trafficProblems") or []:
        t.add_row("Traffic:", Text(str(problem), style="yellow"))
    stable, canary = spec.get("stable") or {}, spec.get("canary") or {}
    if stable or canary:
        t.add_row("Stable / canary:", f"{_dest(stable)} / {_dest(canary)}")
    if st.get("updateHash"):
        t.add_row("Update:", f"{str(st['updateHash'])[:12]} (attempt {st.get('attempt', 1)})")
    t.add_row("Generation:", f"{meta.get('generation', '-')} (observed {st.get('observedGeneration', '-')})")
    t.add_row("Age:", age(meta.get("creationTimestamp")))
    return t


def _dest(d: Mapping[str, Any]) -> str:
    host = str(d.get("host") or "?")
    return host + (f" (subset {d['subset']})" if d.get("subset") else "")


def steps_table(obj: Mapping[str, Any]) -> Table:
    st = _status(obj)
    idx = st.get("currentStepIndex")
    p = phase(obj)
    t = Table(title="Steps", title_justify="left")
    for col in ("#", "step", "state"):
        t.add_column(col, overflow="fold")
    # After an abort the step index is back at 0 (Argo's rule); the failed run says where it happened.
    failed_at = {r.get("stepIndex") for r in st.get("analysisRuns") or []
                 if isinstance(r, Mapping) and r.get("phase") in ("Failed", "Error")} if st.get("abort") else set()
    for i, step in enumerate(_steps(obj)):
        if i in failed_at:
            state = Text("failed: rolled back", style="red")
        elif i < min((x for x in failed_at if isinstance(x, int)), default=0):
            state = Text("done", style="green")
        elif st.get("abort"):
            state = Text("aborted" if i == 0 and not failed_at else "-", style="red" if i == 0 else "dim")
        elif not isinstance(idx, int) or i > idx:
            state = Text("pending", style="dim")
        elif i < idx or st.get("promoted"):
            state = Text("done", style="green")
        elif st.get("abort") or p == "Degraded":
            state = Text("aborted", style="red")
        elif p == "Paused":
            state = Text("paused", style="yellow")
        else:
            state = Text("running", style="cyan")
        t.add_row(str(i), describe_step(step), state)
    return t


def runs_table(obj: Mapping[str, Any]) -> Table:
    t = Table(title="Analysis runs", title_justify="left")
    for col in ("name", "kind", "step", "phase", "started", "completed", "message"):
        t.add_column(col, overflow="fold")
    for r in _status(obj).get("analysisRuns") or []:
        if not isinstance(r, Mapping):
            continue
        ph = str(r.get("phase") or "Pending")
        step = r.get("stepIndex")
        t.add_row(str(r.get("name", "")), str(r.get("kind", "")), "" if step is None else str(step),
                  Text(ph + (" (terminated)" if r.get("terminated") else ""), style=PHASE_STYLE.get(ph, "")),
                  age(r.get("startedAt")) + (" ago" if r.get("startedAt") else ""),
                  age(r.get("completedAt")) + (" ago" if r.get("completedAt") else ""),
                  str(r.get("message") or ""))
    return t


def rollout_view(obj: Mapping[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [summary(obj), Text(""), steps_table(obj)]
    if _status(obj).get("analysisRuns"):
        parts += [Text(""), runs_table(obj)]
    else:
        parts.append(Text("No analysis runs yet.", style="dim"))
    return Group(*parts)


def list_table(objs: Sequence[Mapping[str, Any]], all_namespaces: bool) -> Table:
    t = Table(box=None, pad_edge=False)
    cols = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "PHASE", "STEP", "DESIRED", "VERIFIED", "AGE", "MESSAGE"]
    for c in cols:
        t.add_column(c, overflow="fold", no_wrap=c != "MESSAGE")
    for obj in objs:
        meta = _meta(obj)
        desired, verified = _weights(obj)
        p = phase(obj)
        row: list[str | Text] = [str(meta.get("namespace", ""))] if all_namespaces else []
        row += [str(meta.get("name", "")), Text(p, style=PHASE_STYLE.get(p, "")), step_position(obj),
                "-" if desired is None else str(desired), "-" if verified is None else str(verified),
                age(meta.get("creationTimestamp")), str(_status(obj).get("message") or "")]
        t.add_row(*row)
    return t
