"""``analyzer serve`` with Slack configured from the environment, as an operator would run it
outside Kubernetes: a signed ``/rollout pause`` against the local store pauses the rollout and is
audited; a request signed with another secret is refused and changes nothing."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import httpx
import yaml
from cli_helpers import REPO, analyzer_cmd
from test_slack_endpoints import SECRET, sign

from analyzer.local.events import events_path, read_events
from analyzer.local.store import LocalRolloutStore
from analyzer.localprom import free_port

USER = "U0OPERATOR"


def _start(tmp_path: Path, store_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    policy = tmp_path / "slack-policy.yaml"
    policy.write_text(yaml.safe_dump({"kind": "SlackPolicy", "rules": [
        {"users": [USER], "verbs": ["pause", "status"], "namespaces": ["demo"]}]}))
    port = free_port()
    env = {**os.environ, "SLACK_SIGNING_SECRET": SECRET, "SLACK_POLICY": str(policy)}
    env.pop("SLACK_BOT_TOKEN", None)
    proc = subprocess.Popen([*analyzer_cmd(), "serve", "--no-auth", "--prometheus", "http://127.0.0.1:9",
                             "--listen", f"127.0.0.1:{port}", "--store", str(store_dir)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve did not start")


def _command(url: str, text: str, secret: str = SECRET) -> httpx.Response:
    body = urllib.parse.urlencode({"command": "/rollout", "text": text, "user_id": USER, "user_name": "op",
                                   "channel_id": "C1", "response_url": "http://127.0.0.1:9/none"}).encode()
    ts = str(int(time.time()))
    return httpx.post(f"{url}/slack/commands", content=body, timeout=5, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(body, ts, secret)})


def test_signed_pause_through_analyzer_serve_acts_on_the_local_store(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = LocalRolloutStore(store_dir)
    store.apply({"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
                 "metadata": {"name": "inference", "namespace": "demo"},
                 "spec": {"stable": {"host": "v1"}, "canary": {"host": "v2"},
                          "trafficRouting": {"haproxy": {"socket": str(tmp_path / "none.sock")}},
                          "steps": [{"setWeight": 5}, {"pause": {}}]}})
    proc, url = _start(tmp_path, store_dir)
    try:
        forged = _command(url, "pause demo/inference", secret="0" * 32)
        assert forged.status_code == 401
        assert store.get("demo", "inference")["spec"].get("paused") is not True

        ok = _command(url, "pause demo/inference")
        assert ok.status_code == 200
        for _ in range(50):  # the work happens after the acknowledgement
            if store.get("demo", "inference")["spec"].get("paused") is True:
                break
            time.sleep(0.1)
        assert store.get("demo", "inference")["spec"]["paused"] is True
        audit = read_events(events_path(store_dir, "demo", "inference"))
        assert any(USER in e["message"] and "pause" in e["message"] for e in audit)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
