"""Slack user-group membership for the policy (``usergroups.users.list``, scope ``usergroups:read``).

Only the groups the policy names are read, and each member list is cached for ``ttl`` seconds,
so a click costs at most one Slack call per named group every few minutes. A failed lookup
raises :class:`GroupLookupError`; the endpoint then denies (fail closed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient

from analyzer.server.slack_policy import GroupLookupError


class SlackGroupResolver:
    def __init__(self, client: WebClient, group_ids: Iterable[str], *, ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._groups = sorted(set(group_ids))
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset(g for g in self._groups if user_id in self._members(g))

    def _members(self, group: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(group)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            resp = self._client.usergroups_users_list(usergroup=group)
            users = resp.get("users")
        except Exception as e:  # noqa: BLE001 - any failure denies, with the reason
            raise GroupLookupError(f"cannot read members of Slack user group {group}: {type(e).__name__}: {e}") from None
        if not isinstance(users, list):
            raise GroupLookupError(f"cannot read members of Slack user group {group}: no 'users' in the answer")
        members = frozenset(str(u) for u in users)
        with self._lock:
            self._cache[group] = (now, members)
        return members
