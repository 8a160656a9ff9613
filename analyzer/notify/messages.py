"""Slack Block Kit messages for rollout events (pure: dicts in, dicts out, no I/O).

One function per kind of news: a step change, an analysis verdict (with its reasons and sample
counts), a rollback (with the failing metric), a promotion, and "waiting for you" with Promote /
Abort buttons when a rollout pauses. A button's ``value`` names the rollout, its update hash and
step, so a click on an old message can be refused when the rollout has moved on.

Limits from Slack: header text <= 150 chars, section text <= 3000, button value <= 2000, and a
top-level ``text`` is always sent (it is the notification and the screen-reader fallback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROMOTE_ACTION = "rollout.promote"
ABORT_ACTION = "rollout.abort"
BUTTON_ACTIONS = {PROMOTE_ACTION: "promote", ABORT_ACTION: "abort"}


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ButtonTarget:
    """What a button was made for: the rollout, its update and its step when the message was sent."""

    namespace: str
    name: str
    update_hash: str
    step: int | None


def button_value(t: ButtonTarget) -> str:
    return json.dumps({"ns": t.namespace, "name": t.name, "hash": t.update_hash, "step": t.step},
                      separators=(",", ":"))


def parse_button_value(value: str) -> ButtonTarget:
    """The target of a button; ValueError for anything we did not write."""
    try:
        d = json.loads(value)
    except (TypeError, ValueError):
        raise ValueError("button value is not JSON") from None
    if not isinstance(d, dict):
        raise ValueError("button value is not an object")
    ns, name, h, step = d.get("ns"), d.get("name"), d.get("hash"), d.get("step")
    if not (isinstance(ns, str) and ns and isinstance(name, str) and name and isinstance(h, str)):
        raise ValueError("button value lacks ns/name/hash")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        raise ValueError("button value has a non-integer step")
    return ButtonTarget(ns, name, h, step)


# --------------------------------------------------------------------------- helpers


def esc(text: Any) -> str:
    """Escape for mrkdwn: Slack treats <, > and & as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ident(rollout: Mapping[str, Any]) -> tuple[str, str]:
    md = rollout.get("metadata") or {}
    return str(md.get("namespace") or "default"), str(md.get("name") or "?")


def _status(rollout: Mapping[str, Any]) -> Mapping[str, Any]:
    return rollout.get("status") or {}


def _step_text(rollout: Mapping[str, Any]) -> str:
    st = _status(rollout)
    steps = (rollout.get("spec") or {}).get("steps") or []
    idx = st.get("currentStepIndex")
    if not isinstance(idx, int):
        return "no steps"
    if idx >= len(steps):
        return f"all {len(steps)} steps done"
    step = steps[idx] if isinstance(steps[idx], Mapping) else {}
    what = next(iter(step), "?")
    detail = step.get(what)
    desc = f"{what} {detail}" if isinstance(detail, int | str) else str(what)
    return f"{idx + 1}/{len(steps)} ({desc})"


def _weight_text(rollout: Mapping[str, Any]) -> str:
    w = _status(rollout).get("weights") or {}
    desired, verified = w.get("desired"), w.get("verified")
    if verified is None:
        return f"{desired if desired is not None else 0}% desired, not verified yet"
    return f"{desired}% desired, {verified}% verified"


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(text, 150), "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}}


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "section",
            "fields": [{"type": "mrkdwn", "text": _cut(f"*{k}*\n{v}", 2000)} for k, v in pairs[:10]]}


def _context(rollout: Mapping[str, Any], extra: str = "") -> dict[str, Any]:
    ns, name = ident(rollout)
    uh = str(_status(rollout).get("updateHash") or "")[:8] or "none"
    text = f"`{esc(ns)}/{esc(name)}` · update `{esc(uh)}`" + (f" · {esc(extra)}" if extra else "")
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, 3000)}]}


def _runs(rollout: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in _status(rollout).get("analysisRuns") or [] if isinstance(r, Mapping)]


def _run_named(rollout: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((r for r in _runs(rollout) if r.get("name") == name), None)


_SAMPLE_KEY = re.compile(r"sample|request|count|observation", re.IGNORECASE)


def metric_lines(run: Mapping[str, Any], only_bad: bool = False) -> list[str]:
    """One line per metric of an analysis run: phase, measurement counts, last value, samples."""
    detail = run.get("status") or {}
    out: list[str] = []
    for m in detail.get("metricResults") or []:
        if not isinstance(m, Mapping):
            continue
        phase = str(m.get("phase") or "Pending")
        if only_bad and phase not in ("Failed", "Error", "Inconclusive"):
            continue
        counts = (f"{m.get('count', 0)} measurements: {m.get('successful', 0)} ok, {m.get('failed', 0)} failed, "
                  f"{m.get('inconclusive', 0)} inconclusive, {m.get('error', 0)} error")
        line = f"• *{esc(m.get('name', '?'))}*: {esc(phase)} ({counts})"
        ms = [x for x in m.get("measurements") or [] if isinstance(x, Mapping)]
        if ms:
            last = ms[-1]
            line += f"; last value `{esc(_cut(str(last.get('value', '')), 80))}`"
            samples = {k: v for k, v in (last.get("metadata") or {}).items() if _SAMPLE_KEY.search(str(k))}
            if samples:
                line += "; " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(samples.items()))
            if last.get("message"):
                line += f" — {esc(_cut(str(last['message']), 200))}"
        if m.get("message"):
            line += f"\n    {esc(_cut(str(m['message']), 300))}"
        out.append(line)
    return out


# --------------------------------------------------------------------------- messages


def step_message(rollout: Mapping[str, Any], message: str) -> SlackMessage:
    ns, name = ident(rollout)
    text = f"{ns}/{name}: {message}"
    return SlackMessage(text, [
        _header(f"Rollout {name} ({ns}): step change"),
        _fields([("Step", _step_text(rollout)), ("Canary weight", _weight_text(rollout))]),
        _section(esc(message)),
        _context(rollout),
    ])


def verdict_message(rollout: Mapping[str, Any], reason: str, message: str) -> SlackMessage:
    ns, name = ident(rollout)
    phase = reason.removeprefix("AnalysisRun") or "?"
    icon = {"Successful": "✅", "Failed": "❌", "Error": "⚠️", "Inconclusive": "❔"}.get(phase, "")
    m = re.match(r"analysis run (\S+) is", message)
    run = _run_named(rollout, m.group(1)) if m else None
    lines = metric_lines(run) if run is not None else []
    verdict_msg = (run or {}).get("message") or (run or {}).get("status", {}).get("message") or ""
    blocks = [
        _header(f"{icon} Analysis {phase}: {name} ({ns})".strip()),
        _fields([("Verdict", phase), ("Step", _step_text(rollout))]),
    ]
    if verdict_msg:
        blocks.append(_section(f"*Why*\n{esc(verdict_msg)}"))
    blocks.append(_section("*Metrics*\n" + "\n".join(lines)) if lines else _section(esc(message)))
    blocks.append(_context(rollout, f"analysis run {m.group(1)}" if m else ""))
    return SlackMessage(f"{ns}/{name}: {message}", blocks)


def rollback_message(rollout: Mapping[str, Any], reason: str, message: str) -> SlackMessage:
    ns, name = ident(rollout)
    failing: list[str] = []
    for run in _runs(rollout):
        if run.get("phase") in ("Failed", "Error"):
            failing += [f"_{esc(run.get('name'))}_"] + metric_lines(run, only_bad=True)
    why = str(_status(rollout).get("abortMessage") or message)
    blocks = [
        _header(f"⏪ Rolled back: {name} ({ns})"),
        _section(f"*{esc(reason)}*: {esc(why)}\nAll traffic goes to the stable version."),
        _fields([("Step reached", _step_text(rollout)), ("Canary weight", _weight_text(rollout))]),
    ]
    if failing:
        blocks.append(_section("*Failing metric*\n" + "\n".join(failing)))
    blocks.append(_context(rollout))
    return SlackMessage(f"{ns}/{name} rolled back: {why}", blocks)


def promoted_message(rollout: Mapping[str, Any], message: str) -> SlackMessage:
    ns, name = ident(rollout)
    return SlackMessage(f"{ns}/{name} promoted: {message}", [
        _header(f"🚀 Promoted: {name} ({ns})"),
        _section(esc(message)),
        _context(rollout),
    ])


def waiting_message(rollout: Mapping[str, Any], message: str) -> SlackMessage:
    """Paused for a person (pause step or Inconclusive analysis): Promote / Abort buttons."""
    ns, name = ident(rollout)
    st = _status(rollout)
    step = st.get("currentStepIndex") if isinstance(st.get("currentStepIndex"), int) else None
    target = ButtonTarget(ns, name, str(st.get("updateHash") or ""), step)
    value = button_value(target)
    pauses = [f"• {esc(p.get('reason'))}: {esc(p.get('message') or '')}"
              for p in st.get("pauseConditions") or [] if isinstance(p, Mapping)]
    inconclusive = [ln for run in _runs(rollout) if run.get("phase") == "Inconclusive"
                    for ln in metric_lines(run, only_bad=True)]
    blocks: list[dict[str, Any]] = [
        _header(f"⏸ Waiting for you: {name} ({ns})"),
        _section(esc(message)),
        _fields([("Step", _step_text(rollout)), ("Canary weight", _weight_text(rollout))]),
    ]
    if pauses:
        blocks.append(_section("*Paused because*\n" + "\n".join(pauses)))
    if inconclusive:
        blocks.append(_section("*Inconclusive metrics*\n" + "\n".join(inconclusive)))
    blocks.append({
        "type": "actions",
        "block_id": _cut(f"rollout:{ns}/{name}:{target.update_hash[:8]}:{step}", 255),
        "elements": [
            {"type": "button", "action_id": PROMOTE_ACTION, "style": "primary",
             "text": {"type": "plain_text", "text": "Promote"}, "value": value},
            {"type": "button", "action_id": ABORT_ACTION, "style": "danger",
             "text": {"type": "plain_text", "text": "Abort"}, "value": value,
             "confirm": {"title": {"type": "plain_text", "text": "Abort rollout?"},
                         "text": {"type": "mrkdwn", "text": "All traffic returns to the stable version."},
                         "confirm": {"type": "plain_text", "text": "Abort"},
                         "deny": {"type": "plain_text", "text": "Cancel"}}},
        ],
    })
    blocks.append(_context(rollout, f"step index {step}"))
    return SlackMessage(f"{ns}/{name} is waiting for you: {message}", blocks)


def info_message(rollout: Mapping[str, Any], reason: str, message: str, warning: bool) -> SlackMessage:
    ns, name = ident(rollout)
    return SlackMessage(f"{ns}/{name}: {message}", [
        _section(f"{'⚠️ ' if warning else ''}*{esc(name)}* ({esc(ns)}) · {esc(reason)}\n{esc(message)}"),
        _context(rollout),
    ])


def status_message(rollout: Mapping[str, Any]) -> SlackMessage:
    """The answer to ``/rollout status NS/NAME``."""
    ns, name = ident(rollout)
    st = _status(rollout)
    phase = str(st.get("phase") or "Unknown")
    runs = [f"• {esc(r.get('name'))}: {esc(r.get('phase'))}" + (f" — {esc(r.get('message'))}" if r.get("message") else "")
            for r in _runs(rollout)[-5:]]
    blocks = [
        _header(f"{name} ({ns}): {phase}"),
        _fields([("Phase", phase), ("Step", _step_text(rollout)), ("Canary weight", _weight_text(rollout)),
                 ("Paused", "yes" if st.get("pauseConditions") or (rollout.get("spec") or {}).get("paused") else "no")]),
    ]
    if st.get("message"):
        blocks.append(_section(esc(st["message"])))
    if runs:
        blocks.append(_section("*Analysis runs*\n" + "\n".join(runs)))
    blocks.append(_context(rollout))
    return SlackMessage(f"{ns}/{name}: {phase}, step {_step_text(rollout)}", blocks)


#: Event reasons that are not worth a Slack message (the interesting part comes with the next one).
QUIET_REASONS = frozenset({"AnalysisRunCreated", "AnalysisRunTerminated", "AnalysisRunRunning"})


def event_message(rollout: Mapping[str, Any], reason: str, message: str, warning: bool = False) -> SlackMessage | None:
    """The Slack message for one rollout event, or None when it is not worth one."""
    if reason in QUIET_REASONS:
        return None
    if reason == "RolloutStepCompleted":
        return step_message(rollout, message)
    if reason in ("AnalysisRunSuccessful", "AnalysisRunFailed", "AnalysisRunError", "AnalysisRunInconclusive"):
        return verdict_message(rollout, reason, message)
    if reason in ("RolloutAborted", "ProgressDeadlineExceeded"):
        return rollback_message(rollout, reason, message)
    if reason == "RolloutCompleted":
        return promoted_message(rollout, message)
    if reason == "RolloutPaused":
        return waiting_message(rollout, message)
    return info_message(rollout, reason, message, warning)
