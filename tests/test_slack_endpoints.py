"""Slack endpoints end to end: signed requests over real HTTP (uvicorn on loopback) against the
fake Kubernetes API server through KubeRolloutStore and KubeEvents, with response_url and the
Web API served by a local stand-in. Also the local (file) store, for the demo."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from test_slack_notify import SlackStandIn

from analyzer.kube.events import KubeEvents
from analyzer.kube.rollouts import KubeRolloutStore
from analyzer.local.events import LogEvents, read_events
from analyzer.local.store import LocalRolloutStore
from analyzer.notify.messages import PROMOTE_ACTION, ButtonTarget, button_value, waiting_message
from analyzer.notify.slack import SlackNotifier
from analyzer.ports import EventSink, RolloutStore
from analyzer.server.slack import SlackConfig, slack_routes
from analyzer.server.slack_policy import parse_policy

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "deploy" / "crd" / "modelrollout.yaml"
SECRET = "e3b0c44298fc1c149afbf4c8996fb924"
API = "rollouts.analyzer.dev/v1alpha1"
HASH = "0c1d2e3f4a5b6c7d"

ALLOWED, STATUS_ONLY, ONCALL, STRANGER = "U0ALLOWED1", "U0STATUS1", "U0ONCALL1", "U0STRANGER"
POLICY = parse_policy({"rules": [
    {"users": [ALLOWED], "verbs": ["promote", "abort", "pause", "resume", "status"], "namespaces": ["ml"],
     "rollouts": ["infer*"]},
    {"groups": ["S0ONCALL1"], "verbs": ["*"], "namespaces": ["ml"]},
    {"users": [STATUS_ONLY], "verbs": ["status"], "namespaces": ["*"]},
]}, "test-policy")


def manifest(name: str = "inference", namespace: str = "ml") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ModelRollout", "metadata": {"name": name, "namespace": namespace},
            "spec": {"trafficRouting": {"kserve": {"inferenceService": "model-v2-canary"}},
                     "steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}}


PAUSED_STATUS = {"phase": "Paused", "currentStepIndex": 1, "updateHash": HASH, "observedGeneration": 1,
                 "weights": {"desired": 10, "verified": 10},
                 "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z",
                                      "message": "step 2/3: pause"}]}


# --------------------------------------------------------------------------- harness


def sign(body: bytes, ts: str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()


class Uvicorn:
    """The routes in a small Starlette app, served by a real uvicorn on a loopback port."""

    def __init__(self, app: Starlette) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        end = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < end, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"


@dataclass
class Harness:
    url: str
    slack: SlackStandIn
    store: RolloutStore
    http: httpx.Client

    def post(self, path: str, form: dict[str, str], *, ts: str | None = None, secret: str = SECRET,
             headers: dict[str, str] | None = None) -> httpx.Response:
        body = urlencode(form).encode()
        ts = ts if ts is not None else str(int(time.time()))
        h = {"content-type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
             "X-Slack-Signature": sign(body, ts, secret)}
        if headers is not None:
            h = headers
        return self.http.post(self.url + path, content=body, headers=h)

    def command(self, text: str, user: str = ALLOWED, hook: str = "cmd", **kw: Any) -> httpx.Response:
        form = {"token": "legacy", "team_id": "T1", "channel_id": "C0DEPLOYS", "channel_name": "deploys",
                "user_id": user, "user_name": user.lower(), "command": "/rollout", "text": text,
                "response_url": self.slack.hook(hook), "trigger_id": f"trig-{time.monotonic_ns()}",
                "api_app_id": "A1"}
        return self.post("/slack/commands", form, **kw)

    def click(self, target: ButtonTarget, action: str = PROMOTE_ACTION, user: str = ALLOWED,
              hook: str = "btn") -> httpx.Response:
        payload = {"type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": "T1"},
                   "api_app_id": "A1", "container": {"type": "message", "message_ts": "1.2", "channel_id": "C0DEPLOYS"},
                   "trigger_id": f"trig-{time.monotonic_ns()}", "channel": {"id": "C0DEPLOYS", "name": "deploys"},
                   "response_url": self.slack.hook(hook),
                   "actions": [{"action_id": action, "block_id": "b", "type": "button", "value": button_value(target),
                                "action_ts": str(time.time())}]}
        return self.post("/slack/interactions", {"payload": json.dumps(payload)})

    def hook_bodies(self, hook: str, n: int) -> list[dict[str, Any]]:
        return [c["body"] for c in self.slack.wait_for(f"/hooks/{hook}", n)]


def serve(store: RolloutStore, audit: EventSink, slack: SlackStandIn,
          notifier: SlackNotifier | None = None) -> Iterator[Harness]:
    config = SlackConfig(signing_secret=SECRET, policy=POLICY, bot_token="xoxb-test", api_base_url=slack.api_url)
    app = Starlette(routes=slack_routes(config, store, audit, notifier=notifier))
    with Uvicorn(app) as server, httpx.Client(timeout=10) as http:
        yield Harness(server.url, slack, store, http)


@pytest.fixture
def kube(fake_kube):
    fake_kube.register_crd(str(CRD))
    fake_kube.create_namespace("ml")
    fake_kube.create(manifest())
    fake_kube.set_status(API, "ModelRollout", "inference", PAUSED_STATUS, namespace="ml")
    return fake_kube


@pytest.fixture
def harness(kube):
    api = kube.api_client()
    with SlackStandIn() as slack:
        notifier = SlackNotifier.from_token("xoxb-test", "C0ROLLOUTS", base_url=slack.api_url, backoff=0.01)
        yield from serve(KubeRolloutStore(api), KubeEvents(api), slack, notifier)
        notifier.close()


def rollout_in(kube: Any) -> dict[str, Any]:
    obj = kube.get(API, "ModelRollout", "inference", namespace="ml")
    assert obj is not None
    return obj


def operator_events(kube: Any) -> list[dict[str, Any]]:
    return [e for e in kube.list_objects("v1", "Event", namespace="ml") if e.get("reason") == "OperatorRequest"]


# --------------------------------------------------------------------------- acceptance


def test_valid_promote_moves_the_rollout_and_is_audited(kube, harness):
    before = rollout_in(kube)
    t0 = time.monotonic()
    r = harness.command("promote ml/inference")
    ack_time = time.monotonic() - t0
    assert r.status_code == 200 and ack_time < 3
    assert r.json()["response_type"] == "ephemeral" and "promote: working on `ml/inference`" in r.json()["text"]

    [outcome] = harness.hook_bodies("cmd", 1)
    assert f"<@{ALLOWED}> requested *promote* on `ml/inference` (update `{HASH[:8]}`, step 1)" in outcome["text"]
    after = rollout_in(kube)
    token = after["spec"]["requests"]["promote"]
    assert token and after["spec"]["paused"] is False
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1

    [event] = operator_events(kube)
    assert event["involvedObject"]["name"] == "inference" and event["type"] == "Normal"
    assert f"promote requested via Slack by {ALLOWED} ({ALLOWED.lower()})" in event["message"]
    assert f"on update {HASH[:8]}, step 1 (token {token}, command)" in event["message"]
    # the channel hears it too (notifier -> chat.postMessage)
    [post] = harness.slack.wait_for("/api/chat.postMessage")
    assert "requested promote on ml/inference" in post["body"]["text"]


def test_promote_full_is_a_separate_grant(kube, harness):
    r = harness.command("promote ml/inference --full")
    assert r.status_code == 200
    assert "may not `promote-full` `ml/inference`" in r.json()["text"] and "Nothing was changed" in r.json()["text"]
    assert "requests" not in rollout_in(kube)["spec"]


@pytest.mark.parametrize("case", ["forged", "stale", "future", "no-timestamp", "junk-timestamp", "no-signature"])
def test_unverifiable_requests_get_401_and_change_nothing(kube, harness, case):
    before = rollout_in(kube)
    now = int(time.time())
    if case == "forged":
        r = harness.command("promote ml/inference", secret="not-the-secret")
    elif case == "stale":
        r = harness.command("promote ml/inference", ts=str(now - 6 * 60))
    elif case == "future":
        r = harness.command("promote ml/inference", ts=str(now + 6 * 60))
    elif case == "no-timestamp":
        r = harness.command("promote ml/inference", headers={"content-type": "application/x-www-form-urlencoded",
                                                             "X-Slack-Signature": "v0=" + "0" * 64})
    elif case == "junk-timestamp":
        r = harness.command("promote ml/inference", headers={"X-Slack-Request-Timestamp": "soon",
                                                             "X-Slack-Signature": "v0=" + "0" * 64})
    else:
        r = harness.command("promote ml/inference", headers={"X-Slack-Request-Timestamp": str(now)})
    assert r.status_code == 401 and r.json()["error"] == "invalid request"
    time.sleep(0.3)
    assert rollout_in(kube)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert operator_events(kube) == [] and harness.slack.calls == []


def test_replayed_request_acts_once(kube, harness):
    form = {"user_id": ALLOWED, "user_name": "a", "channel_id": "C0DEPLOYS", "text": "abort ml/inference",
            "response_url": harness.slack.hook("cmd"), "command": "/rollout"}
    body = urlencode(form).encode()
    ts = str(int(time.time()))
    headers = {"content-type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": sign(body, ts)}
    first = harness.http.post(harness.url + "/slack/commands", content=body, headers=headers)
    assert first.status_code == 200
    harness.hook_bodies("cmd", 1)
    token = rollout_in(kube)["spec"]["requests"]["abort"]
    rv = rollout_in(kube)["metadata"]["resourceVersion"]
    again = harness.http.post(harness.url + "/slack/commands", content=body, headers=headers)
    assert again.status_code == 403 and again.json()["reason"] == "request already handled (replay)"
    time.sleep(0.3)
    after = rollout_in(kube)
    assert after["metadata"]["resourceVersion"] == rv and after["spec"]["requests"]["abort"] == token
    assert len(operator_events(kube)) == 1 and len(harness.slack.to("/hooks/cmd")) == 1


def test_unauthorized_user_is_told_why_and_nothing_changes(kube, harness):
    before = rollout_in(kube)
    r = harness.command("abort ml/inference", user=STRANGER)
    assert r.status_code == 200
    body = r.json()
    assert body["response_type"] == "ephemeral"
    assert f"You may not `abort` `ml/inference`: no rule in test-policy allows abort on ml/inference for <@{STRANGER}>" \
        in body["text"]
    # a status-only user cannot act either, and a button click is refused the same way
    assert "may not `promote`" in harness.command("promote ml/inference", user=STATUS_ONLY).json()["text"]
    assert harness.click(ButtonTarget("ml", "inference", HASH, 1), user=STATUS_ONLY).status_code == 200
    [denied] = harness.hook_bodies("btn", 1)
    assert denied["response_type"] == "ephemeral" and denied["replace_original"] is False
    assert "may not `promote` `ml/inference`" in denied["text"]
    time.sleep(0.3)
    assert rollout_in(kube)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert operator_events(kube) == []


def test_button_promotes_and_replaces_the_message(kube, harness):
    r = harness.click(ButtonTarget("ml", "inference", HASH, 1))
    assert r.status_code == 200
    [done] = harness.hook_bodies("btn", 1)
    assert done["replace_original"] is True and "requested *promote*" in done["blocks"][0]["text"]["text"]
    assert rollout_in(kube)["spec"]["requests"]["promote"]
    [event] = operator_events(kube)
    assert "(token " in event["message"] and "button)" in event["message"]


def test_stale_button_is_refused_with_an_explanation(kube, harness):
    # the message was made at step 0; the rollout has moved on to step 1
    harness.click(ButtonTarget("ml", "inference", HASH, 0))
    [refused] = harness.hook_bodies("btn", 1)
    assert refused["replace_original"] is False
    assert "This button is out of date" in refused["text"] and "is at step 1, the request was for step 0" in refused["text"]
    # and one made for an earlier update
    harness.click(ButtonTarget("ml", "inference", "ffffeeee00001111", 1), hook="btn2")
    [refused2] = harness.hook_bodies("btn2", 1)
    assert "has moved on to another update" in refused2["text"]
    assert "requests" not in rollout_in(kube)["spec"] and operator_events(kube) == []


def test_buttons_of_a_real_waiting_message_work(kube, harness):
    """The value the notifier puts on a button is what the endpoint accepts."""
    msg = waiting_message(rollout_in(kube), "paused")
    [actions] = [b for b in msg.blocks if b["type"] == "actions"]
    promote = actions["elements"][0]
    payload = {"type": "block_actions", "user": {"id": ALLOWED}, "response_url": harness.slack.hook("real"),
               "actions": [{"action_id": promote["action_id"], "value": promote["value"]}]}
    assert harness.post("/slack/interactions", {"payload": json.dumps(payload)}).status_code == 200
    harness.hook_bodies("real", 1)
    assert rollout_in(kube)["spec"]["requests"]["promote"]


def test_group_membership_grants_through_usergroups_api(kube, harness):
    harness.slack.usergroups["S0ONCALL1"] = [ONCALL]
    r = harness.command("promote ml/inference --full", user=ONCALL)
    assert "working on" in r.json()["text"]
    harness.hook_bodies("cmd", 1)
    assert rollout_in(kube)["spec"]["requests"]["promoteFull"]
    [call] = harness.slack.to("/api/usergroups.users.list")
    assert call["query"].get("usergroup") == "S0ONCALL1" or call["body"].get("usergroup") == "S0ONCALL1"


def test_status_help_and_bad_commands(kube, harness):
    r = harness.command("status ml/inference", user=STATUS_ONLY)
    assert "looking up" in r.json()["text"]
    [status] = harness.hook_bodies("cmd", 1)
    assert status["response_type"] == "ephemeral" and status["text"].startswith("ml/inference: Paused, step 2/3")
    assert harness.command("help").json()["text"].startswith("*/rollout* acts on model rollouts.")
    bad = harness.command("promote inference").json()
    assert bad["response_type"] == "ephemeral" and "not NAMESPACE/NAME" in bad["text"]
    missing = harness.command("status ml/inferno", hook="missing")
    assert missing.status_code == 200
    assert "rollout `ml/inferno` not found" in harness.hook_bodies("missing", 1)[0]["text"]


def test_oversized_and_malformed_requests(kube, harness):
    big = harness.post("/slack/commands", {"text": "x" * 70_000})
    assert big.status_code == 413
    bad = harness.post("/slack/interactions", {"payload": "{not json"})
    assert bad.status_code == 400
    ssl = harness.http.post(harness.url + "/slack/commands", content=b"ssl_check=1&token=x",
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert ssl.status_code == 200 and ssl.content == b""
    assert "requests" not in rollout_in(kube)["spec"]


def test_the_same_actions_drive_the_local_store(tmp_path):
    store = LocalRolloutStore(tmp_path / "store")
    store.apply(manifest())
    obj = store.get("ml", "inference")
    assert obj is not None
    store.update_status("ml", "inference", PAUSED_STATUS, obj["metadata"]["resourceVersion"])
    with SlackStandIn() as slack:
        for h in serve(store, LogEvents(tmp_path / "store"), slack):
            assert h.command("pause ml/inference").status_code == 200
            h.hook_bodies("cmd", 1)
            assert store.get("ml", "inference")["spec"]["paused"] is True
            h.click(ButtonTarget("ml", "inference", HASH, 1), action="rollout.abort")
            h.hook_bodies("btn", 1)
            assert store.get("ml", "inference")["spec"]["requests"]["abort"]
    events = [e for e in read_events(tmp_path / "store" / "ml" / "inference.events.jsonl")
              if e["reason"] == "OperatorRequest"]
    assert [e["message"].split(" requested")[0] for e in events] == ["pause", "abort"]
    assert events[1]["warning"] is True


def test_ack_does_not_wait_for_a_slow_api_server(kube, harness):
    """Slack gives up after 3 s: the reply comes before the Kubernetes calls, which run after it."""
    kube.set_request_delay(1.2)
    try:
        t0 = time.monotonic()
        r = harness.command("pause ml/inference")
        acked = time.monotonic() - t0
        assert r.status_code == 200 and acked < 0.8
        [outcome] = harness.hook_bodies("cmd", 1)
        assert time.monotonic() - t0 >= 1.2 and "requested *pause*" in outcome["text"]
    finally:
        kube.set_request_delay(0)
    assert rollout_in(kube)["spec"]["paused"] is True
