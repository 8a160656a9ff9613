"""Rollout news to a Slack channel: an :class:`~analyzer.ports.EventSink` over ``chat.postMessage``.

``emit`` only builds the message and puts it on a bounded queue; one daemon thread delivers,
retrying server errors, rate limits and connection failures with exponential backoff, a bounded
number of times. Nothing here blocks the caller or raises into it: a rollout must never wait
for, or fail because of, Slack. Failures are logged with structlog (``slack.delivery_*``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from analyzer.notify.messages import SlackMessage, event_message

log = structlog.get_logger("analyzer.notify.slack")

#: ``ok: false`` errors worth another try (the rest, e.g. ``channel_not_found``, ``invalid_auth``, never heal).
_RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                               "request_timeout"})


@dataclass(frozen=True)
class _Outgoing:
    channel: str
    message: SlackMessage
    reason: str
    rollout: str


class SlackNotifier:
    """Posts rollout events to ``channel`` (or to ``channel_for(rollout)`` when that returns one).

    ``attempts`` bounds the deliveries tried per message; the wait before try n+1 is
    ``backoff * 2**(n-1)`` seconds capped at ``max_backoff`` (or Slack's ``Retry-After``). When
    the queue is full the new message is dropped and logged: old news must not hold up new."""

    def __init__(self, client: WebClient, channel: str, *, attempts: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, queue_size: int = 1000,
                 channel_for: Callable[[Mapping[str, Any]], str | None] | None = None) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self._client = client
        self._channel = channel
        self._channel_for = channel_for
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._q: queue.Queue[_Outgoing] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.delivered = 0
        self.failed = 0

    @classmethod
    def from_token(cls, token: str, channel: str, *, base_url: str | None = None, timeout: float = 5.0,
                   **kwargs: Any) -> SlackNotifier:
        """A notifier with its own WebClient. ``base_url`` is Slack's (``https://slack.com/api/``)
        unless given: tests point it at a local stand-in. The client's own retry handlers are
        turned off, so retries (and their logging) are all ours."""
        client = WebClient(token=token, base_url=base_url or WebClient.BASE_URL, timeout=int(max(1, timeout)),
                           retry_handlers=[])
        return cls(client, channel, **kwargs)

    # -- EventSink ---------------------------------------------------------------------------------

    def emit(self, rollout: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        try:
            msg = event_message(rollout, reason, message, warning)
            if msg is None:
                return
            channel = (self._channel_for(rollout) if self._channel_for else None) or self._channel
            md = rollout.get("metadata") or {}
            self.post(msg, channel=channel, reason=reason, rollout=f"{md.get('namespace')}/{md.get('name')}")
        except Exception as e:  # noqa: BLE001 - an EventSink must not raise
            log.error("slack.notify_failed", reason=reason, error=f"{type(e).__name__}: {e}")

    def post(self, message: SlackMessage, *, channel: str | None = None, reason: str = "", rollout: str = "") -> None:
        """Queue one message; never blocks, never raises."""
        try:
            self._ensure_worker()
            self._q.put_nowait(_Outgoing(channel or self._channel, message, reason, rollout))
        except queue.Full:
            self.failed += 1
            log.error("slack.delivery_dropped", reason=reason, rollout=rollout, why="queue full")
        except Exception as e:  # noqa: BLE001
            self.failed += 1
            log.error("slack.delivery_dropped", reason=reason, rollout=rollout, why=f"{type(e).__name__}: {e}")

    # -- lifecycle ---------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message is delivered or given up; False on timeout."""
        end = time.monotonic() + timeout
        with self._q.all_tasks_done:
            while self._q.unfinished_tasks:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._q.all_tasks_done.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the worker; backoff waits end early."""
        self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _ensure_worker(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slack-notifier", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._deliver(item)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                self.failed += 1
                log.error("slack.delivery_failed", reason=item.reason, rollout=item.rollout,
                          error=f"{type(e).__name__}: {e}")
            finally:
                self._q.task_done()

    def _deliver(self, item: _Outgoing) -> None:
        for attempt in range(1, self._attempts + 1):
            retry_after: float | None = None
            try:
                self._client.chat_postMessage(channel=item.channel, text=item.message.text,
                                              blocks=item.message.blocks, unfurl_links=False, unfurl_media=False)
                self.delivered += 1
                log.info("slack.delivered", channel=item.channel, reason=item.reason, rollout=item.rollout,
                         attempt=attempt)
                return
            except SlackApiError as e:
                status = int(getattr(e.response, "status_code", 0) or 0)
                error = _api_error(e.response)
                retryable = status >= 500 or status == 429 or error in _RETRYABLE_ERRORS
                retry_after = _retry_after(e.response)
                why = f"HTTP {status} {error}".strip()
            except Exception as e:  # noqa: BLE001 - connection refused, timeout, bad JSON...
                retryable = True
                why = f"{type(e).__name__}: {e}"
            if not retryable or attempt == self._attempts or self._stop.is_set():
                self.failed += 1
                log.error("slack.delivery_failed", channel=item.channel, reason=item.reason, rollout=item.rollout,
                          attempts=attempt, error=why, retryable=retryable)
                return
            delay = min(self._max_backoff, retry_after if retry_after is not None
                        else self._backoff * 2 ** (attempt - 1))
            log.warning("slack.delivery_retry", channel=item.channel, reason=item.reason, rollout=item.rollout,
                        attempt=attempt, retry_in=delay, error=why)
            if self._stop.wait(delay):
                self.failed += 1
                log.error("slack.delivery_failed", channel=item.channel, reason=item.reason, rollout=item.rollout,
                          attempts=attempt, error=why, retryable=True, why="notifier closed")
                return


def _api_error(response: Any) -> str:
    try:
        data = response.data if isinstance(response.data, dict) else {}
        return str(data.get("error") or "")
    except Exception:  # noqa: BLE001
        return ""


def _retry_after(response: Any) -> float | None:
    try:
        headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
        v = headers.get("retry-after")
        if isinstance(v, list):
            v = v[0] if v else None
        return float(v) if v is not None else None
    except (TypeError, ValueError, AttributeError):
        return None
