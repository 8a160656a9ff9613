"""The Slack authorization policy: loading with clear errors, default deny, globs, groups; and the
request verifier's guards around slack_sdk's SignatureVerifier."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from analyzer.server.slack import CommandError, SlackConfig, SlackConfigError, parse_command, slack_from_env
from analyzer.server.slack_policy import GroupLookupError, PolicyError, load_policy, parse_policy
from analyzer.server.slack_verify import RequestVerifier

ROOT = Path(__file__).resolve().parents[1]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def test_shipped_example_policy_loads_and_means_what_it_says():
    p = load_policy(ROOT / "policies" / "slack" / "policy.yaml")
    assert p.group_ids == {"S0614TZR7"}
    # release manager: promote anywhere, not promote-full, not retry
    assert p.authorize("U024BE7LH", "promote", "prod", "checkout").allowed
    assert not p.authorize("U024BE7LH", "promote-full", "prod", "checkout").allowed
    # recsys owner: only recsys-* in staging
    assert p.authorize("U01RECSYS1", "promote-full", "staging", "recsys-ranker").allowed
    assert not p.authorize("U01RECSYS1", "promote", "staging", "search").allowed
    assert not p.authorize("U01RECSYS1", "promote", "prod", "recsys-ranker").allowed
    # anyone: status only
    assert p.authorize("U999NOBODY", "status", "prod", "x").allowed
    d = p.authorize("U999NOBODY", "abort", "prod", "x")
    assert not d.allowed and "no rule" in d.reason and "abort on prod/x" in d.reason
    # group rule: only through a membership lookup
    assert not p.authorize("U777ONCALL", "abort", "ml-eu", "inference").allowed
    allowed = p.authorize("U777ONCALL", "abort", "ml-eu", "inference", lambda u: frozenset({"S0614TZR7"}))
    assert allowed.allowed and "rules[0]" in allowed.reason


def test_empty_policy_denies_everything_and_group_lookup_failure_propagates():
    p = parse_policy({"rules": []})
    assert not p.authorize("U024BE7LH", "status", "default", "x").allowed
    g = parse_policy({"rules": [{"groups": ["S0614TZR7"], "verbs": ["*"], "namespaces": ["*"]}]})

    def broken(user: str) -> frozenset[str]:
        raise GroupLookupError("slack down")

    with pytest.raises(GroupLookupError):
        g.authorize("U1AAAA", "promote", "ml", "x", broken)


def test_bad_policy_errors_name_file_field_and_reason(tmp_path):
    f = tmp_path / "slack.yaml"
    f.write_text(
        "kind: SlackPolicy\n"
        "rule: []\n"
    )
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    assert f"{f}: rule: unknown field (did you mean 'rules'?)" in e.value.problems
    assert f"{f}: rules: required: a list of rules (an empty list denies everything)" in e.value.problems

    f.write_text(
        "rules:\n"
        "  - users: [alice]\n"
        "    verbs: [promot]\n"
        "    namespace: [ml]\n"
        "  - verbs: [abort]\n"
        "    namespaces: []\n"
        "    groups: [U024BE7LH]\n"
        "  - 42\n"
    )
    with pytest.raises(PolicyError) as e:
        load_policy(f)
    probs = e.value.problems
    assert f"{f}: rules[0].users[0]: 'alice' is not a Slack user id (like U024BE7LH; names are not ids)" in probs
    assert any(x.startswith(f"{f}: rules[0].verbs[0]: unknown verb 'promot' (did you mean 'promote'?)") for x in probs)
    assert f"{f}: rules[0].namespace: unknown field (did you mean 'namespaces'?)" in probs
    assert f"{f}: rules[0].namespaces: required: a non-empty list" in probs
    assert f"{f}: rules[1].namespaces: must be a non-empty list of strings" in probs
    assert f"{f}: rules[1].groups[0]: 'U024BE7LH' is not a Slack user group id (like S0614TZR7)" in probs
    assert f"{f}: rules[2]: must be a mapping, got int" in probs

    f.write_text("rules: [\n")
    with pytest.raises(PolicyError, match=r"slack.yaml: invalid YAML \(line \d+, column \d+\)"):
        load_policy(f)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_config_from_env_reports_what_is_missing(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text("rules: [{users: [U024BE7LH], verbs: [status], namespaces: ['*']}]\n")
    with pytest.raises(SlackConfigError, match="SLACK_SIGNING_SECRET: required"):
        SlackConfig.from_env({"SLACK_POLICY": str(pol)})
    with pytest.raises(SlackConfigError, match="SLACK_POLICY: required"):
        SlackConfig.from_env({"SLACK_SIGNING_SECRET": SECRET})
    with pytest.raises(SlackConfigError, match="SLACK_BOT_TOKEN: must be a bot token"):
        SlackConfig.from_env({"SLACK_SIGNING_SECRET": SECRET, "SLACK_POLICY": str(pol), "SLACK_BOT_TOKEN": "xoxp-1"})
    pol.write_text("rules: [{groups: [S0614TZR7], verbs: [status], namespaces: ['*']}]\n")
    with pytest.raises(SlackConfigError, match="need SLACK_BOT_TOKEN"):
        SlackConfig.from_env({"SLACK_SIGNING_SECRET": SECRET, "SLACK_POLICY": str(pol)})
    cfg = SlackConfig.from_env({"SLACK_SIGNING_SECRET": SECRET, "SLACK_POLICY": str(pol), "SLACK_BOT_TOKEN": "xoxb-1",
                                "SLACK_CHANNEL": "C0ROLLOUTS", "SLACK_API_BASE_URL": "http://127.0.0.1:1/api/"})
    assert (cfg.channel, cfg.api_base_url, cfg.policy.group_ids) == ("C0ROLLOUTS", "http://127.0.0.1:1/api/",
                                                                     {"S0614TZR7"})
    env = {"SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "C0ROLLOUTS"}
    routes, notifier = slack_from_env(store=None, audit=None, env=env, policy_path=str(pol))  # type: ignore[arg-type]
    assert [r.path for r in routes] == ["/slack/commands", "/slack/interactions"] and notifier is not None
    notifier.close()
    routes, notifier = slack_from_env(None, None, env={**env, "SLACK_CHANNEL": ""},  # type: ignore[arg-type]
                                      policy_path=str(pol))
    assert notifier is None


def test_command_parsing():
    assert parse_command("promote ml/inference --full").verb == "promote-full"
    assert parse_command("  ABORT   ml/inference ") == parse_command("abort ml/inference")
    assert parse_command("").verb == "help" and parse_command("help me").verb == "help"
    for bad, why in [("promot ml/x", "unknown command"), ("pause ml/x --full", "--full"),
                     ("promote inference", "not NAMESPACE/NAME"), ("promote ml/x ml/y", "one rollout"),
                     ("status ML/<x>", "not NAMESPACE/NAME")]:
        with pytest.raises(CommandError, match=why):
            parse_command(bad)


# --------------------------------------------------------------------------- verification


def sign(body: bytes, ts: str, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()


def test_verifier_guards():
    now = 1_700_000_000.0
    v = RequestVerifier(SECRET, clock=lambda: now)
    body = b"token=x&text=status+ml%2Fx"
    ts = str(int(now))
    ok = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(body, ts)}
    assert v.check(body, ok) is None
    replay = v.check(body, ok)
    assert replay is not None and (replay.status, replay.reason) == (403, "request already handled (replay)")

    def why(headers: dict[str, str], b: bytes = body) -> tuple[int, str]:
        r = v.check(b, headers)
        assert r is not None
        return r.status, r.reason

    assert why({"X-Slack-Signature": sign(body, ts)}) == (401, "missing X-Slack-Request-Timestamp")
    for junk in ("abc", "1_700_000_000", " 1700000000", "-5", "1e9", ""):
        assert why({"X-Slack-Request-Timestamp": junk, "X-Slack-Signature": "v0=00"})[1] == \
            "X-Slack-Request-Timestamp is not a number of seconds", junk
    old = str(int(now) - 301)
    assert why({"X-Slack-Request-Timestamp": old, "X-Slack-Signature": sign(body, old)})[0] == 401
    future = str(int(now) + 301)
    assert why({"X-Slack-Request-Timestamp": future, "X-Slack-Signature": sign(body, future)})[0] == 401
    assert why({"X-Slack-Request-Timestamp": ts}) == (401, "missing X-Slack-Signature")
    assert why({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(body, ts, "other-secret")}) == \
        (401, "signature does not match")
    assert why({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(body + b"&x=1", ts)}) == \
        (401, "signature does not match")
    bad_utf8 = b"text=\xff\xfe"
    assert why({"x-slack-request-timestamp": ts, "x-slack-signature": sign(bad_utf8, ts)}, bad_utf8) == \
        (401, "body is not UTF-8")
    # a forged request is not remembered: the genuine one with another body still passes
    body2 = b"text=other"
    assert v.check(body2, {"x-slack-request-timestamp": ts, "x-slack-signature": sign(body2, ts)}) is None


def test_replay_cache_forgets_only_after_the_window():
    clock = [1_700_000_000.0]
    v = RequestVerifier(SECRET, clock=lambda: clock[0])
    ts = str(int(clock[0]))
    h = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(b"a=1", ts)}
    assert v.check(b"a=1", h) is None
    clock[0] += 299
    r = v.check(b"a=1", h)
    assert r is not None and r.status == 403
    clock[0] += 3  # outside the window: refused by the timestamp check, and the entry may go
    r = v.check(b"a=1", h)
    assert r is not None and r.status == 401
    ts2 = str(int(clock[0]))  # the next genuine request purges what the window already refuses
    assert v.check(b"b=2", {"X-Slack-Request-Timestamp": ts2, "X-Slack-Signature": sign(b"b=2", ts2)}) is None
    assert list(v._seen) == [sign(b"b=2", ts2)]
