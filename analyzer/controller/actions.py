"""Operator verbs on a rollout: promote, promote --full, abort, retry, pause, resume.

Used by the CLI, the Slack endpoints and the demo, against any :class:`~analyzer.ports.RolloutStore`.
A verb never moves traffic itself: it writes a one-shot request token into ``spec.requests`` (or
``spec.paused``), and the controller acts on it once (the step engine remembers handled tokens in
``status.handledRequests``). So a verb is safe to send while the controller is down, and a
repeated click with the same token acts once.

``expect`` guards against acting on a rollout that moved on since the person looked at it (a
stale Slack button): it names the update and step the request was meant for, and the verb is
refused with :class:`StaleRequest` when the rollout is elsewhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analyzer.ports import NotFound, RolloutStore

VERBS = ("promote", "promote-full", "abort", "retry", "pause", "resume")
_REQUEST_FIELD = {"promote": "promote", "promote-full": "promoteFull", "abort": "abort", "retry": "retry"}


class ActionError(RuntimeError):
    """The verb cannot be applied (unknown rollout, wrong state); the message says why."""


class StaleRequest(ActionError):
    """The rollout is no longer at the update/step the request was made for."""


@dataclass(frozen=True)
class Expect:
    update_hash: str | None = None
    step: int | None = None


@dataclass(frozen=True)
class ActionResult:
    verb: str
    namespace: str
    name: str
    token: str
    actor: str
    at: datetime
    update_hash: str
    step: int | None

    def describe(self) -> str:
        where = f"update {self.update_hash[:8]}" + (f", step {self.step}" if self.step is not None else "")
        return f"{self.verb} requested on {self.namespace}/{self.name} by {self.actor} ({where})"


def position(obj: Mapping[str, Any]) -> tuple[str, int | None]:
    """(update hash, current step index) as the rollout's status shows them."""
    st = obj.get("status") or {}
    step = st.get("currentStepIndex")
    return str(st.get("updateHash") or ""), (int(step) if isinstance(step, int) else None)


def request(store: RolloutStore, namespace: str, name: str, verb: str, *, actor: str = "cli",
            expect: Expect | None = None, now: datetime | None = None) -> ActionResult:
    if verb not in VERBS:
        raise ActionError(f"unknown verb {verb!r} (one of {', '.join(VERBS)})")
    obj = store.get(namespace, name)
    if obj is None:
        raise ActionError(f"rollout {namespace}/{name} not found")
    update_hash, step = position(obj)
    if expect is not None:
        if expect.update_hash is not None and expect.update_hash != update_hash:
            raise StaleRequest(f"rollout {namespace}/{name} has moved on to another update "
                               f"({update_hash[:8] or 'none'}, the request was for {expect.update_hash[:8]})")
        if expect.step is not None and expect.step != step:
            raise StaleRequest(f"rollout {namespace}/{name} is at step {step}, the request was for step {expect.step}")
    at = now or datetime.now(UTC)
    token = f"{at.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
    patch: dict[str, Any]
    if verb in _REQUEST_FIELD:
        patch = {"requests": {_REQUEST_FIELD[verb]: token}}
        if verb in ("promote", "promote-full"):
            patch["paused"] = False  # Argo's promote also unpauses
    elif verb == "pause":
        patch = {"paused": True}
    else:  # resume: unpause; a pause step or an Inconclusive pause is ended by a promote
        patch = {"paused": False}
        if (obj.get("status") or {}).get("pauseConditions"):
            patch["requests"] = {"promote": token}
    try:
        store.patch_spec(namespace, name, patch)
    except NotFound:
        raise ActionError(f"rollout {namespace}/{name} not found") from None
    return ActionResult(verb, namespace, name, token, actor, at, update_hash, step)
