"""Slack endpoints of ``analyzer serve``: the ``/rollout`` slash command and the Promote / Abort buttons.

Order of work for every request, and why:

1. read the raw body (signing covers the exact bytes; form parsing would lose them), bounded;
2. verify it (:mod:`analyzer.server.slack_verify`): 401 when not from Slack or outside the
   5-minute window, 403 for a replay, and nothing else happens;
3. parse it and authorize the Slack user against the policy (:mod:`analyzer.server.slack_policy`),
   before anything changes; a denial is an ephemeral message (HTTP 200: Slack shows the body of a
   slash-command reply only then);
4. acknowledge at once (Slack gives up after 3 seconds) and do the work in a background task:
   the operator verb through :func:`analyzer.controller.actions.request` (buttons carry the update
   hash and step they were made for, so a stale button is refused with ``StaleRequest``), the
   audit record (an event on the ``audit`` sink, a Kubernetes Event in a cluster, and a structured
   log line), and the outcome through ``response_url`` and, when a notifier is given, the channel.

Works against any :class:`~analyzer.ports.RolloutStore` (Kubernetes or the local files of the demo).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import parse_qs

import structlog
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from analyzer.controller.actions import ActionError, ActionResult, Expect, StaleRequest, request
from analyzer.notify.messages import (
    BUTTON_ACTIONS,
    ButtonTarget,
    SlackMessage,
    esc,
    parse_button_value,
    status_message,
)
from analyzer.notify.slack import SlackNotifier
from analyzer.ports import EventSink, RolloutStore
from analyzer.server.slack_groups import SlackGroupResolver
from analyzer.server.slack_policy import GroupLookupError, PolicyError, SlackPolicy, load_policy
from analyzer.server.slack_verify import WINDOW_SECONDS, RequestVerifier

log = structlog.get_logger("analyzer.server.slack")

AUDIT_REASON = "OperatorRequest"
_NS = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_COMMAND_VERBS = ("promote", "pause", "resume", "abort", "retry", "status")

HELP = (
    "*/rollout* acts on model rollouts.\n"
    "• `/rollout status NS/NAME`: phase, step, weights, analysis runs\n"
    "• `/rollout promote NS/NAME`: end the current pause (or Inconclusive analysis) and go to the next step\n"
    "• `/rollout promote NS/NAME --full`: skip the remaining steps and analysis, all traffic to the canary\n"
    "• `/rollout pause NS/NAME` / `/rollout resume NS/NAME`\n"
    "• `/rollout abort NS/NAME`: all traffic back to stable · `/rollout retry NS/NAME`: start an aborted update again\n"
    "Who may do what is set by the Slack policy of the server (docs/slack.md)."
)


class SlackConfigError(ValueError):
    """The Slack settings are unusable; the message names the setting and the reason."""


@dataclass(frozen=True)
class SlackConfig:
    """What the endpoints need. ``api_base_url`` points the Web API client elsewhere (tests)."""

    signing_secret: str
    policy: SlackPolicy
    bot_token: str | None = None
    channel: str | None = None
    api_base_url: str | None = None
    max_body_bytes: int = 64 * 1024
    window_seconds: int = WINDOW_SECONDS
    clock: Callable[[], float] = field(default=time.time)
    group_cache_seconds: float = 300.0
    group_lookup_timeout: float = 1.5
    response_attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, policy_path: str | None = None) -> SlackConfig:
        """From ``SLACK_SIGNING_SECRET`` (required), ``SLACK_POLICY`` (path, required unless
        ``policy_path``), ``SLACK_BOT_TOKEN``, ``SLACK_CHANNEL``, ``SLACK_API_BASE_URL``."""
        env = os.environ if env is None else env
        secret = (env.get("SLACK_SIGNING_SECRET") or "").strip()
        if not secret:
            raise SlackConfigError("SLACK_SIGNING_SECRET: required (the app's Signing Secret, from a Kubernetes Secret)")
        path = policy_path or env.get("SLACK_POLICY")
        if not path:
            raise SlackConfigError("SLACK_POLICY: required (path to the authorization policy, e.g. policies/slack/policy.yaml)")
        try:
            policy = load_policy(path)
        except PolicyError as e:
            raise SlackConfigError(str(e)) from None
        token = (env.get("SLACK_BOT_TOKEN") or "").strip() or None
        if token is not None and not token.startswith("xoxb-"):
            raise SlackConfigError("SLACK_BOT_TOKEN: must be a bot token (xoxb-...)")
        if policy.group_ids and token is None:
            raise SlackConfigError(f"{path}: rules name user groups, which need SLACK_BOT_TOKEN "
                                   "(scope usergroups:read) to be resolved")
        return cls(signing_secret=secret, policy=policy, bot_token=token,
                   channel=(env.get("SLACK_CHANNEL") or "").strip() or None,
                   api_base_url=(env.get("SLACK_API_BASE_URL") or "").strip() or None)

    def web_client(self, timeout: float = 5.0) -> WebClient | None:
        if self.bot_token is None:
            return None
        return WebClient(token=self.bot_token, base_url=self.api_base_url or WebClient.BASE_URL,
                         timeout=max(1, int(round(timeout))), retry_handlers=[])


# --------------------------------------------------------------------------- command parsing


@dataclass(frozen=True)
class Command:
    verb: str  # an actions verb, or "status" / "help"
    namespace: str = ""
    name: str = ""


class CommandError(ValueError):
    pass


def parse_command(text: str) -> Command:
    """``VERB NS/NAME [--full]``; empty text or ``help`` is help."""
    words = text.split()
    if not words or words[0].lower() == "help":
        return Command("help")
    verb = words[0].lower()
    if verb not in _COMMAND_VERBS:
        raise CommandError(f"unknown command `{esc(words[0])}` (one of {', '.join(_COMMAND_VERBS)}, help)")
    args = words[1:]
    full = "--full" in args
    args = [a for a in args if a != "--full"]
    if full and verb != "promote":
        raise CommandError("`--full` goes with `promote` only")
    if len(args) != 1:
        raise CommandError(f"`{verb}` takes one rollout as NAMESPACE/NAME, e.g. `/rollout {verb} ml/inference`")
    ns, sep, name = args[0].partition("/")
    if not sep or not _NS.match(ns) or not _NAME.match(name):
        raise CommandError(f"`{esc(args[0])}` is not NAMESPACE/NAME (lower-case Kubernetes names)")
    return Command("promote-full" if full else verb, ns, name)


# --------------------------------------------------------------------------- replies through response_url


class Responder:
    """POSTs JSON to a ``response_url``: bounded retries on 5xx and connection errors, never raises."""

    def __init__(self, attempts: int = 3, backoff: float = 0.5, timeout: int = 5) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout

    def send(self, url: str, body: Mapping[str, Any]) -> bool:
        if not url:
            return False
        why = ""
        for attempt in range(1, self.attempts + 1):
            try:
                resp = WebhookClient(url, timeout=self.timeout).send_dict(dict(body))
                if 200 <= resp.status_code < 300:
                    return True
                why = f"HTTP {resp.status_code} {resp.body[:200]}"
                if resp.status_code < 500 and resp.status_code != 429:
                    break
            except Exception as e:  # noqa: BLE001
                why = f"{type(e).__name__}: {e}"
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        log.error("slack.response_failed", error=why, attempts=attempt)
        return False


def _ephemeral(text: str, **extra: Any) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text, **extra}


# --------------------------------------------------------------------------- the endpoints


@dataclass(frozen=True)
class _Job:
    verb: str
    namespace: str
    name: str
    user_id: str
    user_name: str
    channel_id: str
    response_url: str
    source: str  # "command" or "button"
    expect: Expect | None = None


class SlackEndpoints:
    def __init__(self, config: SlackConfig, store: RolloutStore, audit: EventSink, *,
                 notifier: SlackNotifier | None = None, groups: Callable[[str], frozenset[str]] | None = None,
                 responder: Responder | None = None) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.notifier = notifier
        self.verifier = RequestVerifier(config.signing_secret, window_seconds=config.window_seconds,
                                        clock=config.clock)
        if groups is None and config.policy.group_ids:
            client = config.web_client(timeout=config.group_lookup_timeout)
            if client is not None:
                groups = SlackGroupResolver(client, config.policy.group_ids,
                                            ttl=config.group_cache_seconds).groups_of
        self.groups = groups
        self.responder = responder or Responder(attempts=config.response_attempts)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _verified_form(self, request: Request) -> dict[str, str] | Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.config.max_body_bytes:
                return JSONResponse({"error": "request too large"}, status_code=413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if form.get("ssl_check") == "1":  # Slack's certificate probe: answer, do nothing
            return Response(status_code=200)
        rejected = self.verifier.check(body, dict(request.headers))
        if rejected is not None:
            log.warning("slack.request_rejected", path=request.url.path, status=rejected.status, why=rejected.reason,
                        client=request.client.host if request.client else None)
            return JSONResponse({"error": "invalid request", "reason": rejected.reason}, status_code=rejected.status)
        return form

    async def command(self, request: Request) -> Response:
        form = await self._verified_form(request)
        if isinstance(form, Response):
            return form
        try:
            cmd = parse_command(form.get("text", ""))
        except CommandError as e:
            return JSONResponse(_ephemeral(f"{e}\n\n{HELP}"))
        if cmd.verb == "help":
            return JSONResponse(_ephemeral(HELP))
        job = _Job(cmd.verb, cmd.namespace, cmd.name, form.get("user_id", ""), form.get("user_name", ""),
                   form.get("channel_id", ""), form.get("response_url", ""), "command")
        denied = await run_in_threadpool(self._authorize, job)
        if denied is not None:
            return JSONResponse(_ephemeral(denied))
        what = "looking up" if cmd.verb == "status" else f"{cmd.verb}: working on"
        return JSONResponse(_ephemeral(f"{what} `{cmd.namespace}/{cmd.name}`…"),
                            background=BackgroundTask(self._work, job))

    async def interaction(self, request: Request) -> Response:
        form = await self._verified_form(request)
        if isinstance(form, Response):
            return form
        try:
            payload = json.loads(form.get("payload", ""))
            if not isinstance(payload, dict):
                raise ValueError("payload is not an object")
        except ValueError:
            return JSONResponse({"error": "payload is not JSON"}, status_code=400)
        if payload.get("type") != "block_actions":
            return Response(status_code=200)  # shortcuts, view submissions...: not ours
        user = payload.get("user") or {}
        response_url = str(payload.get("response_url") or "")
        action = next((a for a in payload.get("actions") or [] if isinstance(a, dict)
                       and a.get("action_id") in BUTTON_ACTIONS), None)
        if action is None:
            return Response(status_code=200)
        try:
            target: ButtonTarget = parse_button_value(str(action.get("value") or ""))
        except ValueError as e:
            log.warning("slack.bad_button", why=str(e), user=user.get("id"))
            return Response(status_code=200, background=BackgroundTask(
                self.responder.send, response_url, _ephemeral(f"This button cannot be used: {e}.")))
        job = _Job(BUTTON_ACTIONS[str(action["action_id"])], target.namespace, target.name, str(user.get("id") or ""),
                   str(user.get("username") or user.get("name") or ""), str((payload.get("channel") or {}).get("id") or ""),
                   response_url, "button", Expect(target.update_hash, target.step))
        denied = await run_in_threadpool(self._authorize, job)
        if denied is not None:
            return Response(status_code=200, background=BackgroundTask(
                self.responder.send, response_url, _ephemeral(denied)))
        return Response(status_code=200, background=BackgroundTask(self._work, job))

    # -- authorization -------------------------------------------------------------------------

    def _authorize(self, job: _Job) -> str | None:
        """None when allowed, else the explanation for the user (also logged)."""
        policy_verb = job.verb
        if not job.user_id:
            decision_reason = "the request names no Slack user"
            allowed = False
        else:
            try:
                d = self.config.policy.authorize(job.user_id, policy_verb, job.namespace, job.name, self.groups)
                allowed, decision_reason = d.allowed, d.reason
            except GroupLookupError as e:
                allowed, decision_reason = False, f"{e}; denied to be safe"
        log.info("slack.authorization", user=job.user_id, user_name=job.user_name, verb=policy_verb,
                 namespace=job.namespace, name=job.name, allowed=allowed, why=decision_reason, source=job.source)
        if allowed:
            return None
        return (f"⛔ You may not `{policy_verb}` `{job.namespace}/{job.name}`: {decision_reason}. "
                "Nothing was changed. Ask the owners of the rollout policy to grant it.")

    # -- the work, after the ack ---------------------------------------------------------------

    def _work(self, job: _Job) -> None:
        try:
            if job.verb == "status":
                self._status(job)
            else:
                self._act(job)
        except Exception as e:  # noqa: BLE001 - a background task has nobody else to tell
            log.exception("slack.work_failed", verb=job.verb, namespace=job.namespace, name=job.name)
            self.responder.send(job.response_url, _ephemeral(
                f"`{job.verb}` on `{job.namespace}/{job.name}` failed: {type(e).__name__}: {esc(e)}"))

    def _status(self, job: _Job) -> None:
        obj = self.store.get(job.namespace, job.name)
        if obj is None:
            self.responder.send(job.response_url, _ephemeral(f"rollout `{job.namespace}/{job.name}` not found"))
            return
        msg = status_message(obj)
        self.responder.send(job.response_url, _ephemeral(msg.text, blocks=msg.blocks))

    def _act(self, job: _Job) -> None:
        actor = f"slack:{job.user_id}"
        try:
            result = request(self.store, job.namespace, job.name, job.verb, actor=actor, expect=job.expect)
        except StaleRequest as e:
            log.info("slack.action_refused", verb=job.verb, namespace=job.namespace, name=job.name, user=job.user_id,
                     why="stale button", detail=str(e))
            self.responder.send(job.response_url, _ephemeral(
                f"⌛ This button is out of date: {esc(e)}. Nothing was changed. "
                f"See `/rollout status {job.namespace}/{job.name}` for where it is now."))
            return
        except ActionError as e:
            log.info("slack.action_refused", verb=job.verb, namespace=job.namespace, name=job.name, user=job.user_id,
                     why=str(e))
            self.responder.send(job.response_url, _ephemeral(f"Could not `{job.verb}` `{job.namespace}/{job.name}`: {esc(e)}"))
            return
        self._record(job, result)
        done = (f"<@{job.user_id}> requested *{job.verb}* on `{job.namespace}/{job.name}` "
                f"(update `{result.update_hash[:8] or 'none'}`, step {_step(result.step)}); the controller acts on it next.")
        if job.source == "button":  # replace the buttons: nobody clicks a decided question twice
            self.responder.send(job.response_url, {"replace_original": True, "text": _plain(done),
                                                   "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": done}}]})
        else:
            self.responder.send(job.response_url, _ephemeral(done))
        if self.notifier is not None:
            self.notifier.post(SlackMessage(_plain(done), [{"type": "section", "text": {"type": "mrkdwn", "text": done}}]),
                               reason=AUDIT_REASON, rollout=f"{job.namespace}/{job.name}")

    def _record(self, job: _Job, result: ActionResult) -> None:
        """Audit: who, what, when, on which revision: an event (Kubernetes Event) and a log line."""
        at = result.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = (f"{job.verb} requested via Slack by {job.user_id}"
                   + (f" ({job.user_name})" if job.user_name else "")
                   + f" at {at} on update {result.update_hash[:8] or 'none'}, step {_step(result.step)} "
                   f"(token {result.token}, {job.source})")
        log.info("slack.action", actor=job.user_id, actor_name=job.user_name, verb=job.verb, namespace=job.namespace,
                 name=job.name, update_hash=result.update_hash, step=result.step, token=result.token, at=at,
                 channel=job.channel_id, source=job.source)
        obj = None
        try:
            obj = self.store.get(job.namespace, job.name)
        except Exception as e:  # noqa: BLE001 - the request is written; the event is best effort
            log.warning("slack.audit_read_failed", error=f"{type(e).__name__}: {e}")
        try:
            self.audit.emit(obj or {"metadata": {"namespace": job.namespace, "name": job.name}},
                            AUDIT_REASON, message, warning=job.verb == "abort")
        except Exception as e:  # noqa: BLE001 - an EventSink must not raise; if it does, say so
            log.error("slack.audit_emit_failed", error=f"{type(e).__name__}: {e}")


def _step(step: int | None) -> str:
    return "none" if step is None else str(step)


def _plain(mrkdwn: str) -> str:
    return mrkdwn.replace("*", "").replace("`", "")


def slack_routes(config: SlackConfig, store: RolloutStore, audit: EventSink, *,
                 notifier: SlackNotifier | None = None, groups: Callable[[str], frozenset[str]] | None = None,
                 responder: Responder | None = None, prefix: str = "/slack") -> list[Route]:
    """``POST {prefix}/commands`` (slash command Request URL) and ``POST {prefix}/interactions``
    (Interactivity Request URL), for ``build_app(settings, extra_routes=...)``."""
    ep = SlackEndpoints(config, store, audit, notifier=notifier, groups=groups, responder=responder)
    return [Route(f"{prefix}/commands", ep.command, methods=["POST"], name="slack-commands"),
            Route(f"{prefix}/interactions", ep.interaction, methods=["POST"], name="slack-interactions")]


def slack_from_env(store: RolloutStore, audit: EventSink, *, env: Mapping[str, str] | None = None,
                   policy_path: str | None = None, prefix: str = "/slack") -> tuple[list[Route], SlackNotifier | None]:
    """Everything ``analyzer serve`` needs from the environment (:meth:`SlackConfig.from_env`):
    the routes, and a notifier when both ``SLACK_BOT_TOKEN`` and ``SLACK_CHANNEL`` are set (the
    daemon can fan its events out to it too; close it on shutdown). Raises
    :class:`SlackConfigError` naming the setting at fault."""
    config = SlackConfig.from_env(env, policy_path=policy_path)
    notifier = None
    if config.bot_token and config.channel:
        notifier = SlackNotifier.from_token(config.bot_token, config.channel, base_url=config.api_base_url)
    return slack_routes(config, store, audit, notifier=notifier, prefix=prefix), notifier
