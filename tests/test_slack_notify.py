"""Slack notifications: Block Kit payloads, retries and failure isolation, against a local HTTP
stand-in for the Slack Web API (a real ``http.server`` on loopback; Slack cannot be reached here).

``SlackStandIn`` is also used by the endpoint tests (response_url hooks, usergroups)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from analyzer.notify import FanOut
from analyzer.notify.messages import (
    ABORT_ACTION,
    PROMOTE_ACTION,
    ButtonTarget,
    event_message,
    parse_button_value,
)
from analyzer.notify.slack import SlackNotifier

TOKEN = "xoxb-test-token"


class SlackStandIn:
    """Records every request; answers Web API methods (``/api/<method>``) and response_url hooks
    (``/hooks/<anything>``). ``script[path]`` is a list of ``(status, body, headers)`` answered
    first, in order, before the default ``{"ok": true}``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: dict[str, list[tuple[int, Any, dict[str, str]]]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                u = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                ctype = self.headers.get("content-type", "")
                body: Any
                if "json" in ctype:
                    body = json.loads(raw or b"null")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                query = {k: v[0] for k, v in parse_qs(u.query).items()}
                with outer._lock:
                    outer.calls.append({"method": self.command, "path": u.path, "headers": dict(self.headers),
                                        "body": body, "query": query, "at": time.monotonic()})
                    scripted = outer.script.get(u.path) or []
                    answer = scripted.pop(0) if scripted else None
                if answer is None:
                    if u.path == "/api/usergroups.users.list":
                        group = query.get("usergroup") or (body or {}).get("usergroup")
                        answer = (200, {"ok": True, "users": outer.usergroups.get(str(group), [])}, {})
                    elif u.path.startswith("/hooks/"):
                        answer = (200, "ok", {})
                    else:
                        answer = (200, {"ok": True, "channel": "C1", "ts": "1700000000.000100"}, {})
                status, payload, headers = answer
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain" if isinstance(payload, str) else "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = _handle
            do_GET = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlackStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def hook(self, name: str = "resp") -> str:
        return f"{self.url}/hooks/{name}"

    def to(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["path"] == path]

    def wait_for(self, path: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.to(path)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"expected {n} call(s) to {path}, got {len(self.to(path))}: {self.calls}")


@pytest.fixture
def slack_api():
    with SlackStandIn() as s:
        yield s


def free_dead_port() -> int:
    """A loopback port with nobody listening (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rollout(**status: Any) -> dict[str, Any]:
    st = {"phase": "Paused", "currentStepIndex": 1, "updateHash": "0c1d2e3f4a5b6c7d",
          "weights": {"desired": 10, "verified": 10}}
    st.update(status)
    return {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
            "metadata": {"name": "inference", "namespace": "ml", "resourceVersion": "7", "generation": 2},
            "spec": {"trafficRouting": {"kserve": {"inferenceService": "model-v2-canary"}},
                     "steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"analysis": {"templates": [
                         {"templateName": "success-rate"}]}}]},
            "status": st}


FAILED_RUN = {
    "name": "inference-0c1d2e3f-3-success-rate", "kind": "Step", "stepIndex": 3, "phase": "Failed",
    "message": 'Metric "success-rate" assessed Failed due to failed (2) > failureLimit (1)',
    "status": {"phase": "Failed", "metricResults": [
        {"name": "success-rate", "phase": "Failed", "count": 5, "successful": 3, "failed": 2, "inconclusive": 0,
         "error": 0, "measurements": [{"phase": "Failed", "value": "[0.93]",
                                       "metadata": {"canarySamples": "812", "ResolvedPrometheusQuery": "q"}}]},
        {"name": "latency", "phase": "Successful", "count": 5, "successful": 5, "failed": 0, "inconclusive": 0,
         "error": 0}]},
}


def notifier_for(api: SlackStandIn | str, **kw: Any) -> SlackNotifier:
    base = api.api_url if isinstance(api, SlackStandIn) else api
    kw.setdefault("backoff", 0.01)
    return SlackNotifier.from_token(TOKEN, "C0ROLLOUTS", base_url=base, timeout=2, **kw)


def blocks_of(call: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = call["body"]["blocks"]
    return json.loads(blocks) if isinstance(blocks, str) else blocks


# --------------------------------------------------------------------------- payloads


def test_waiting_message_has_promote_and_abort_buttons_bound_to_revision_and_step(slack_api):
    n = notifier_for(slack_api)
    paused = rollout(pauseConditions=[{"reason": "InconclusiveAnalysisRun", "startTime": "2026-01-01T00:00:00Z",
                                       "message": "Step-based analysis r1 is Inconclusive: no data"}])
    n.emit(paused, "RolloutPaused", "paused: r1 is Inconclusive; promote to go on, abort to roll back", warning=True)
    assert n.flush(10)
    [call] = slack_api.wait_for("/api/chat.postMessage")
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    body = call["body"]
    assert body["channel"] == "C0ROLLOUTS"
    assert body["text"].startswith("ml/inference is waiting for you")
    blocks = blocks_of(call)
    assert blocks[0]["type"] == "header" and "Waiting for you: inference (ml)" in blocks[0]["text"]["text"]
    assert any("InconclusiveAnalysisRun" in b.get("text", {}).get("text", "") for b in blocks)
    [actions] = [b for b in blocks if b["type"] == "actions"]
    promote, abort = actions["elements"]
    assert (promote["action_id"], promote["style"], abort["action_id"], abort["style"]) == (
        PROMOTE_ACTION, "primary", ABORT_ACTION, "danger")
    assert abort["confirm"]["confirm"]["text"] == "Abort"
    expected = ButtonTarget("ml", "inference", "0c1d2e3f4a5b6c7d", 1)
    assert parse_button_value(promote["value"]) == expected == parse_button_value(abort["value"])
    assert len(promote["value"]) <= 2000 and len(actions["block_id"]) <= 255
    n.close()


def test_verdict_message_carries_reasons_and_sample_counts():
    msg = event_message(rollout(analysisRuns=[FAILED_RUN]), "AnalysisRunFailed",
                        f"analysis run {FAILED_RUN['name']} is Failed: {FAILED_RUN['message']}", True)
    assert msg is not None
    text = json.dumps(msg.blocks)
    assert "Analysis Failed: inference (ml)" in msg.blocks[0]["text"]["text"]
    assert "failed (2) &gt; failureLimit (1)" in text  # the reason, mrkdwn-escaped
    assert "*success-rate*: Failed (5 measurements: 3 ok, 2 failed" in text
    assert "canarySamples 812" in text
    assert "*latency*: Successful" in text


def test_rollback_message_names_the_failing_metric_only():
    msg = event_message(rollout(phase="Degraded", abort=True, abortMessage="Step-based analysis phase failed",
                                analysisRuns=[FAILED_RUN]),
                        "RolloutAborted", "Rollout aborted update 0c1d2e3f: Step-based analysis phase failed", True)
    assert msg is not None
    failing = [b for b in msg.blocks if "Failing metric" in b.get("text", {}).get("text", "")]
    assert len(failing) == 1
    assert "*success-rate*: Failed" in failing[0]["text"]["text"]
    assert "latency" not in failing[0]["text"]["text"]
    assert msg.text == "ml/inference rolled back: Step-based analysis phase failed"


def test_step_and_promotion_messages_and_quiet_reasons():
    step = event_message(rollout(currentStepIndex=2, weights={"desired": 50, "verified": 50}),
                         "RolloutStepCompleted", "Rollout step 2/4 completed (pause)")
    assert step is not None
    fields = [f["text"] for b in step.blocks for f in b.get("fields", [])]
    assert "*Step*\n3/4 (setWeight 50)" in fields and "*Canary weight*\n50% desired, 50% verified" in fields
    done = event_message(rollout(phase="Healthy", promoted=True), "RolloutCompleted", "update 0c1d2e3f promoted")
    assert done is not None and "Promoted: inference (ml)" in done.blocks[0]["text"]["text"]
    assert event_message(rollout(), "AnalysisRunCreated", "analysis run x (success-rate)") is None


# --------------------------------------------------------------------------- delivery


def test_server_errors_are_retried_with_backoff_then_delivered(slack_api):
    slack_api.script["/api/chat.postMessage"] = [(500, "upstream broke", {}),
                                                 (503, {"ok": False, "error": "service_unavailable"}, {}),
                                                 (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})]
    n = notifier_for(slack_api, backoff=0.05)
    n.emit(rollout(), "RolloutStepCompleted", "Rollout step 1/4 completed (setWeight: 10)")
    assert n.flush(10)
    calls = slack_api.to("/api/chat.postMessage")
    assert len(calls) == 4 and (n.delivered, n.failed) == (1, 0)
    # exponential backoff between the first tries: >= 0.05 s, then >= 0.1 s
    assert calls[1]["at"] - calls[0]["at"] >= 0.05 and calls[2]["at"] - calls[1]["at"] >= 0.1
    n.close()


def test_retries_are_bounded_and_permanent_errors_are_not_retried(slack_api):
    slack_api.script["/api/chat.postMessage"] = [(500, "down", {})] * 10 + []
    n = notifier_for(slack_api, attempts=3)
    n.emit(rollout(), "RolloutStepCompleted", "step")
    assert n.flush(10)
    assert len(slack_api.to("/api/chat.postMessage")) == 3 and n.failed == 1
    slack_api.script["/api/chat.postMessage"] = [(200, {"ok": False, "error": "channel_not_found"}, {})]
    n.emit(rollout(), "RolloutStepCompleted", "step")
    assert n.flush(10)
    assert len(slack_api.to("/api/chat.postMessage")) == 4 and n.failed == 2
    n.close()


def test_dead_slack_never_blocks_or_raises_into_emit():
    n = notifier_for(f"http://127.0.0.1:{free_dead_port()}/api/", attempts=3)
    t0 = time.monotonic()
    for _ in range(20):
        n.emit(rollout(), "RolloutPaused", "paused")
    n.emit({}, "RolloutAborted", "garbage rollout")  # malformed input must not raise either
    n.emit({"metadata": None, "status": "nonsense"}, "AnalysisRunFailed", "analysis run x is Failed")
    assert time.monotonic() - t0 < 0.5
    assert n.flush(30)
    assert n.delivered == 0 and n.failed >= 20
    n.close()


def test_full_queue_drops_instead_of_blocking(slack_api):
    slack_api.script["/api/chat.postMessage"] = [(500, "slow", {})] * 50
    n = notifier_for(slack_api, queue_size=2, attempts=2, backoff=0.5)
    t0 = time.monotonic()
    for _ in range(10):
        n.emit(rollout(), "RolloutStepCompleted", "step")
    assert time.monotonic() - t0 < 0.5
    assert n.failed >= 7  # at most one in flight and two queued
    n.close(timeout=5)


class _Broken:
    def emit(self, *a: Any, **k: Any) -> None:
        raise RuntimeError("sink broke")


class _Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    def emit(self, rollout: Any, reason: str, message: str, *, warning: bool = False) -> None:
        self.got.append((reason, message))


def test_fan_out_isolates_a_broken_sink():
    rec = _Recorder()
    FanOut([_Broken(), rec]).emit(rollout(), "RolloutPaused", "paused")
    assert rec.got == [("RolloutPaused", "paused")]


def test_a_hanging_slack_does_not_hold_up_emit():
    """A server that accepts connections and never answers: delivery times out in the worker,
    emit() returns at once."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(50)
    try:
        n = notifier_for(f"http://127.0.0.1:{hole.getsockname()[1]}/api/", attempts=1)
        t0 = time.monotonic()
        for _ in range(2):
            n.emit(rollout(), "RolloutStepCompleted", "step")
        assert time.monotonic() - t0 < 0.2
        assert not n.flush(0.5)  # still stuck on the first delivery: proof it was not done inline
        assert n.flush(30) and n.failed == 2
        n.close()
    finally:
        hole.close()
