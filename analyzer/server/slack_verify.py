"""Slack request verification (signing scheme v0), with the guards ``slack_sdk`` leaves to us.

``SignatureVerifier.is_valid`` does the HMAC and the constant-time comparison; around it we
refuse a missing or non-numeric ``X-Slack-Request-Timestamp`` (the SDK calls ``int()`` on it
unguarded), a body that is not UTF-8 (the SDK decodes it before hashing), a timestamp outside
the 5-minute window, and a replay: a signature seen before is refused while its timestamp is
still inside the window, so one signed request acts once. After the window the timestamp check
refuses it anyway, which is why the cache only needs to remember a signature that long.

The replay cache lives in this process: with several replicas behind one Slack request URL a
replay could reach another replica (docs/slack.md says to run one, or use sticky routing).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from slack_sdk.signature import Clock, SignatureVerifier

WINDOW_SECONDS = 300
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Rejection:
    """Why a request was refused; ``status`` is the HTTP status to answer with."""

    status: int
    reason: str


class _FnClock(Clock):
    def __init__(self, fn: Callable[[], float]) -> None:
        self._fn = fn

    def now(self) -> float:
        return self._fn()


class RequestVerifier:
    """Checks one request's raw body and headers; thread-safe."""

    def __init__(self, signing_secret: str, *, window_seconds: int = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.time, replay_capacity: int = 100_000) -> None:
        self._sdk = SignatureVerifier(signing_secret, clock=_FnClock(clock))
        self._window = window_seconds
        self._clock = clock
        self._capacity = replay_capacity
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> forget after (unix s)
        self._lock = threading.Lock()

    def check(self, body: bytes, headers: Mapping[str, str]) -> Rejection | None:
        """None when the request is authentic, fresh and new; else why not."""
        h = {k.lower(): v for k, v in headers.items()}
        ts = h.get("x-slack-request-timestamp")
        sig = h.get("x-slack-signature")
        if ts is None:
            return Rejection(401, "missing X-Slack-Request-Timestamp")
        if not _TIMESTAMP.match(ts):
            return Rejection(401, "X-Slack-Request-Timestamp is not a number of seconds")
        now = self._clock()
        if abs(now - int(ts)) > self._window:
            return Rejection(401, f"X-Slack-Request-Timestamp is more than {self._window} s from now "
                                  "(stale or replayed request, or a clock out of sync)")
        if not sig:
            return Rejection(401, "missing X-Slack-Signature")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection(401, "body is not UTF-8")
        if not self._sdk.is_valid(body, ts, sig):  # HMAC-SHA256 + hmac.compare_digest
            return Rejection(401, "signature does not match")
        with self._lock:
            self._forget_expired(now)
            if sig in self._seen:
                return Rejection(403, "request already handled (replay)")
            while len(self._seen) >= self._capacity:
                self._seen.popitem(last=False)
            self._seen[sig] = int(ts) + self._window + 1
        return None

    def _forget_expired(self, now: float) -> None:
        # Entries are appended in arrival order and their timestamps are within one window of
        # each other, so scanning from the oldest and stopping at the first live one is enough
        # in practice; a late out-of-order entry just lives a little longer.
        while self._seen:
            sig, until = next(iter(self._seen.items()))
            if until > now:
                break
            self._seen.popitem(last=False)
