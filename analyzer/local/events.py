"""Events as JSON lines, one file per rollout: an :class:`~analyzer.ports.EventSink` for local runs,
and the history ``analyzer report`` draws (weights over time, step boundaries, the decision).

File: ``DIR/<namespace>/<name>.events.jsonl`` (:func:`events_path`; with a
:class:`~analyzer.local.LocalRolloutStore` DIR is the store's directory). One JSON object per line::

    {"time": "2026-11-28T10:00:01.123Z",   # when emit() was called (UTC, milliseconds)
     "ts": 1795860001.123,                  # the same, Unix seconds (what plots use)
     "namespace": "default", "name": "demo-good",
     "reason": "RolloutStepCompleted",      # the step engine's Event.reason, verbatim
     "message": "Rollout step 1/9 completed (setWeight: 5)",
     "warning": false,
     "generation": 3, "resourceVersion": "17",      # of the rollout object passed to emit()
     "state": {                             # snapshot of the rollout's status passed to emit()
       "phase": "Progressing", "step": 1, "steps": 9,   # currentStepIndex, len(spec.steps)
       "desiredWeight": 5, "verifiedWeight": 5,
       "abort": false, "promoted": false, "updateHash": "0c1d…", "attempt": 1}}

The snapshot is what makes weights over time possible from events alone, so the caller must pass
``emit`` the rollout **with the status this pass wrote** (after the router's read-back was
recorded), not the one it read at the start of the pass. The reasons the report gives meaning to:
``RolloutUpdated`` (start), ``RolloutStepCompleted`` (step boundary), ``RolloutCompleted``
(decision: promoted), ``RolloutAborted`` / ``ProgressDeadlineExceeded`` with ``state.abort``
(decision: rolled back), ``AnalysisRun<Phase>`` (verdicts). Any other reason is kept and listed.

Appends are one ``write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``, so lines
from several processes never interleave. A crash mid-append can leave a partial last line;
:func:`read_events` skips lines that do not parse. ``emit`` never raises: a sink's failure is
logged and never becomes the rollout's problem.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".events.jsonl"


def events_path(directory: str | Path, namespace: str, name: str) -> Path:
    return Path(directory) / (namespace or "default") / f"{name}{SUFFIX}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def snapshot(rollout: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a rollout's status the history needs (see the module docstring)."""
    status = _mapping(rollout.get("status"))
    spec = _mapping(rollout.get("spec"))
    weights = _mapping(status.get("weights"))
    steps = spec.get("steps")
    if not isinstance(steps, list):  # an Argo Rollout keeps them under strategy.canary
        steps = _mapping(_mapping(spec.get("strategy")).get("canary")).get("steps")
    return {
        "phase": status.get("phase"),
        "step": status.get("currentStepIndex"),
        "steps": len(steps) if isinstance(steps, list) else None,
        "desiredWeight": weights.get("desired"),
        "verifiedWeight": weights.get("verified"),
        "abort": bool(status.get("abort")),
        "promoted": bool(status.get("promoted")),
        "updateHash": status.get("updateHash"),
        "attempt": status.get("attempt"),
    }


class LogEvents:
    """Implements :class:`~analyzer.ports.EventSink`: appends to the rollout's events file.

    ``echo`` (optional) also receives every record, e.g. to print live progress; its failures
    are logged like the file's."""

    def __init__(self, directory: str | Path, *, clock: Callable[[], datetime] | None = None,
                 echo: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.directory = Path(directory)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.echo = echo

    def emit(self, rollout: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        try:
            record = self.record(rollout, reason, message, warning=warning)
            self._append(record)
        except Exception as exc:  # noqa: BLE001 - a sink must not raise (EventSink contract)
            log.warning("event %s not written to %s: %s", reason, self.directory, exc)
            return
        if self.echo is not None:
            try:
                self.echo(record)
            except Exception as exc:  # noqa: BLE001
                log.warning("event echo failed: %s", exc)

    def record(self, rollout: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> dict[str, Any]:
        meta = _mapping(rollout.get("metadata"))
        now = self.clock().astimezone(UTC)
        return {
            "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "ts": round(now.timestamp(), 3),
            "namespace": str(meta.get("namespace") or "default"),
            "name": str(meta.get("name") or ""),
            "reason": str(reason),
            "message": str(message),
            "warning": bool(warning),
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "state": snapshot(rollout),
        }

    def _append(self, record: dict[str, Any]) -> None:
        if not record["name"]:
            raise ValueError("the rollout has no metadata.name")
        path = events_path(self.directory, record["namespace"], record["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of one file in order; a missing file has none; lines that do not parse (a
    crash mid-append) are skipped with a warning in the log."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: not a JSON event line, skipped", path, n)
            continue
        if isinstance(rec, dict) and isinstance(rec.get("ts"), int | float) and isinstance(rec.get("reason"), str):
            out.append(rec)
        else:
            log.warning("%s:%d: not an event (needs ts and reason), skipped", path, n)
    return out
