"""Rollouts without Kubernetes: rollouts and their status in files (:mod:`.store`), AnalysisTemplates
from YAML files (:mod:`.templates`) and events as JSON lines (:mod:`.events`). The daemon, the
CLI verbs, Slack and the demo use these through the same ports as the Kubernetes adapters."""

from analyzer.local.events import LogEvents, events_path, read_events
from analyzer.local.store import LocalRolloutStore, StoreError
from analyzer.local.templates import LocalTemplates

__all__ = ["LocalRolloutStore", "LocalTemplates", "LogEvents", "StoreError", "events_path", "read_events"]
