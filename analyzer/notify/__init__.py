"""Telling people what rollouts do: Slack messages (``messages``, pure) and their delivery
(``slack``), plus ``FanOut`` to send one event to several sinks (Kubernetes Events, logs, Slack)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from analyzer.ports import EventSink

log = structlog.get_logger("analyzer.notify")


class FanOut:
    """An EventSink that passes each event to every sink; one failing sink does not stop the others."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = list(sinks)

    def emit(self, rollout: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        for sink in self.sinks:
            try:
                sink.emit(rollout, reason, message, warning=warning)
            except Exception as e:  # noqa: BLE001 - EventSinks must not raise; a broken one is logged
                log.error("event_sink_failed", sink=type(sink).__name__, reason=reason,
                          error=f"{type(e).__name__}: {e}")


__all__ = ["FanOut"]
