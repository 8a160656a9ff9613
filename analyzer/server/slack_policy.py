"""Who may do what from Slack: the authorization policy (``policies/slack/policy.yaml``).

Default deny: a request is allowed only when some rule names the Slack user (or one of the user
groups the user belongs to), the verb, the namespace and the rollout. Patterns are shell globs
(``ml-*``). ``promote`` does not imply ``promote-full`` (a full promotion skips the remaining
analysis, so it is granted on its own).

Errors name the file, the field path and the reason, e.g.
``policies/slack/policy.yaml: rules[1].verbs[0]: unknown verb 'promot' (did you mean 'promote'?)``.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from analyzer.controller.actions import VERBS as ACTION_VERBS

#: Verbs a policy can grant: the operator verbs plus ``status`` (read-only).
POLICY_VERBS: tuple[str, ...] = (*ACTION_VERBS, "status")

_TOP_FIELDS = ("kind", "description", "rules")
_RULE_FIELDS = ("description", "users", "groups", "verbs", "namespaces", "rollouts")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` are ``file: field: reason`` lines."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class GroupLookupError(RuntimeError):
    """A user's group memberships could not be read (Slack API down, missing scope)."""


@dataclass(frozen=True)
class Rule:
    index: int
    description: str
    users: tuple[str, ...]
    groups: tuple[str, ...]
    verbs: tuple[str, ...]
    namespaces: tuple[str, ...]
    rollouts: tuple[str, ...]

    def covers(self, verb: str, namespace: str, name: str) -> bool:
        return (("*" in self.verbs or verb in self.verbs)
                and any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces)
                and any(fnmatch.fnmatchcase(name, p) for p in self.rollouts))

    def label(self) -> str:
        return f"rules[{self.index}]" + (f" ({self.description})" if self.description else "")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    rule: Rule | None = None


@dataclass(frozen=True)
class SlackPolicy:
    rules: tuple[Rule, ...]
    source: str = "<policy>"

    @property
    def group_ids(self) -> frozenset[str]:
        return frozenset(g for r in self.rules for g in r.groups)

    def authorize(self, user_id: str, verb: str, namespace: str, name: str,
                  groups_of: Callable[[str], frozenset[str]] | None = None) -> Decision:
        """Allowed iff a rule covering (verb, namespace, name) names the user or one of their groups.

        ``groups_of`` is only called when a covering rule grants by group and no rule grants by
        user id, so a policy without groups never calls Slack. It may raise
        :class:`GroupLookupError`; the caller must then deny (fail closed)."""
        covering = [r for r in self.rules if r.covers(verb, namespace, name)]
        for r in covering:
            if "*" in r.users or user_id in r.users:
                return Decision(True, f"allowed by {self.source} {r.label()}", r)
        by_group = [r for r in covering if r.groups]
        if by_group and groups_of is not None:
            mine = groups_of(user_id)
            for r in by_group:
                if mine.intersection(r.groups):
                    return Decision(True, f"allowed by {self.source} {r.label()} (user group)", r)
        return Decision(False, f"no rule in {self.source} allows {verb} on {namespace}/{name} for <@{user_id}>")


def load_policy(path: str | Path) -> SlackPolicy:
    """Read and check a policy file; raises :class:`PolicyError` with every problem found."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError([f"{p}: cannot read: {e.strerror or e}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise PolicyError([f"{p}: invalid YAML{where}: {getattr(e, 'problem', None) or e}"]) from None
    return parse_policy(data, str(p))


def parse_policy(data: Any, source: str = "<policy>") -> SlackPolicy:
    problems: list[str] = []

    def err(field: str, reason: str) -> None:
        problems.append(f"{source}: {field}: {reason}" if field else f"{source}: {reason}")

    if not isinstance(data, Mapping):
        raise PolicyError([f"{source}: must be a mapping with a 'rules' list, got {type(data).__name__}"])
    _unknown(data, _TOP_FIELDS, "", err)
    if data.get("kind", "SlackPolicy") != "SlackPolicy":
        err("kind", f"must be SlackPolicy, got {data.get('kind')!r}")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        err("rules", "required: a list of rules (an empty list denies everything)")
        raise PolicyError(problems)
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(raw, Mapping):
            err(where, f"must be a mapping, got {type(raw).__name__}")
            continue
        _unknown(raw, _RULE_FIELDS, where + ".", err)
        users = _strings(raw, "users", where, err)
        groups = _strings(raw, "groups", where, err)
        verbs = _strings(raw, "verbs", where, err, required=True)
        namespaces = _strings(raw, "namespaces", where, err, required=True)
        rollouts = _strings(raw, "rollouts", where, err) or ("*",)
        if not users and not groups:
            err(where, "names nobody: give 'users' (Slack user ids, or '*') and/or 'groups' (user group ids)")
        for j, u in enumerate(users):
            if u != "*" and not _USER_ID.match(u):
                err(f"{where}.users[{j}]", f"{u!r} is not a Slack user id (like U024BE7LH; names are not ids)")
        for j, g in enumerate(groups):
            if not _GROUP_ID.match(g):
                err(f"{where}.groups[{j}]", f"{g!r} is not a Slack user group id (like S0614TZR7)")
        for j, v in enumerate(verbs):
            if v != "*" and v not in POLICY_VERBS:
                err(f"{where}.verbs[{j}]", f"unknown verb {v!r}{_did_you_mean(v, POLICY_VERBS)} "
                                           f"(one of {', '.join(POLICY_VERBS)}, or '*')")
        desc = raw.get("description", "")
        if not isinstance(desc, str):
            err(f"{where}.description", "must be a string")
            desc = ""
        rules.append(Rule(i, desc, users, groups, verbs, namespaces, rollouts))
    if problems:
        raise PolicyError(problems)
    return SlackPolicy(tuple(rules), source)


def _unknown(m: Mapping[str, Any], known: Iterable[str], prefix: str, err: Callable[[str, str], None]) -> None:
    known = tuple(known)
    for k in m:
        if k not in known:
            err(f"{prefix}{k}", f"unknown field{_did_you_mean(str(k), known)}")


def _strings(m: Mapping[str, Any], key: str, where: str, err: Callable[[str, str], None],
             required: bool = False) -> tuple[str, ...]:
    v = m.get(key)
    if v is None:
        if required:
            err(f"{where}.{key}", "required: a non-empty list")
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or (required and not v):
        err(f"{where}.{key}", "must be a non-empty list of strings" if required else "must be a list of strings")
        return ()
    out: list[str] = []
    for j, item in enumerate(v):
        if not isinstance(item, str) or not item:
            err(f"{where}.{key}[{j}]", f"must be a non-empty string, got {item!r}")
        else:
            out.append(item)
    return tuple(out)


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
