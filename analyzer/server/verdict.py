"""One verdict request -> the strict-JSON verdict the Argo ``web`` provider reads.

Shared by the HTTP service (``analyzer serve``) and the in-process ``judge`` metric provider, so
both answer the same document for the same question. The statistics are the judge's
(``analyzer.core.stats.judge``) on data read by ``analyzer.judge.live.fetch_steps``, exactly as
``analyzer judge --prometheus`` computes them; this module only adds what a service needs:

* request validation that names the field (``canary.pod: ...``), never a traceback;
* canary/baseline selection merged over the policy's arm labels (label selectors, or
  pod-template hashes with the Prometheus label that carries them);
* an analysis start that may be omitted (then: when the canary's series first appeared), because
  Argo cannot template "the time this AnalysisRun started" into a request;
* evaluation capped at ``start + horizon`` (the judge never looks past it), which bounds the
  Prometheus work of a request and makes the answer stable once the horizon is reached;
* a document with no NaN/Infinity tokens (``strict_json``): released Argo versions treat a body
  that is not JSON as a *passing* measurement (ecosystem-notes §1.3).
"""

from __future__ import annotations

import calendar
import difflib
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from analyzer.core.stats import Decision, MetricType, Steps, Verdict, judge
from analyzer.judge.config import JudgeConfig, live_problems, load_config, parse_config
from analyzer.judge.errors import JudgeInputError
from analyzer.judge.live import LiveError, fetch_steps, with_arm

__all__ = [
    "DEFAULT_HASH_LABEL", "FIELDS", "LiveError", "PolicyBook", "RequestError", "VerdictRequest",
    "compute_verdict", "parse_query", "parse_request", "strict_json",
]

DEFAULT_HASH_LABEL = "rollouts_pod_template_hash"
FIELDS = ("policy", "start", "canary", "baseline", "canaryHash", "stableHash", "baselineHash", "hashLabel",
          "namespace", "rollout")
MAX_TEXT = 256  # label values, hashes, names
MAX_LABELS = 16  # per arm
MAX_VALUES = 64  # values of one list matcher
FIRST_SEEN_MARGIN = 600.0  # seconds searched for the canary's first series beyond 2 x horizon
MAX_STEPS = 5000  # horizon / step of a policy: bounds memory and Prometheus work per request
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_AUTO = ("", "auto")
Labels = tuple[tuple[str, str | tuple[str, ...]], ...]


class RequestError(ValueError):
    """The request cannot be analysed as given; ``problems`` are (field, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {r}" if f else r for f, r in problems))



POLICIES_ENV = "ANALYZER_POLICIES"


def default_policies_dir() -> Path:
    """Where named judge policies are: ``$ANALYZER_POLICIES`` (the container image sets it to the
    copy it ships), else the ``policies/`` of the source checkout this package runs from."""
    env = os.environ.get(POLICIES_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "policies"

@dataclass(frozen=True)
class VerdictRequest:
    """A validated, normalised verdict request (hashable: it is the cache key)."""

    policy: str  # a name in the policies directory, or "" for the inline one
    inline: str  # canonical JSON of an inline policy ("" for a named one)
    start: float | None  # unix seconds; None: when the canary's series first appeared
    canary: Labels
    baseline: Labels
    namespace: str = ""
    rollout: str = ""


# --- request parsing -----------------------------------------------------------------------------


def _text(value: Any, name: str, out: list[tuple[str, str]], *, required: bool = False) -> str:
    if value is None or (value == "" and not required):
        if required:
            out.append((name, "required"))
        return ""
    if not isinstance(value, str):
        out.append((name, f"expected a string, got {_kind(value)}"))
        return ""
    if not value or len(value) > MAX_TEXT:
        out.append((name, f"expected 1 to {MAX_TEXT} characters, got {len(value)}"))
        return ""
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _label_name(name: Any, where: str, out: list[tuple[str, str]]) -> bool:
    if isinstance(name, str) and _LABEL.match(name) and len(name) <= MAX_TEXT:
        return True
    hint = ""
    if isinstance(name, str) and _LABEL.match(name.replace("-", "_").replace(".", "_").replace("/", "_")):
        hint = f" (Prometheus label names use _, e.g. {name.replace('-', '_').replace('.', '_').replace('/', '_')})"
    out.append((where, f"not a valid Prometheus label name{hint}"))
    return False


def _selector(value: Any, name: str, out: list[tuple[str, str]]) -> Labels:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        out.append((name, f"expected an object of label name -> value (or list of values), got {_kind(value)}"))
        return ()
    if len(value) > MAX_LABELS:
        out.append((name, f"at most {MAX_LABELS} labels"))
        return ()
    labels: list[tuple[str, str | tuple[str, ...]]] = []
    for label, v in value.items():
        where = f"{name}.{label}"
        if not _label_name(label, where, out):
            continue
        if isinstance(v, str) and len(v) <= MAX_TEXT:
            labels.append((label, v))
        elif (isinstance(v, list) and 0 < len(v) <= MAX_VALUES
              and all(isinstance(x, str) and len(x) <= MAX_TEXT for x in v)):
            labels.append((label, tuple(v)))
        else:
            out.append((where, f"expected a string or a list of 1 to {MAX_VALUES} strings "
                               f"(at most {MAX_TEXT} characters each)"))
    return tuple(sorted(labels))


def _start(value: Any, out: list[tuple[str, str]]) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _AUTO):
        return None
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
                seconds = calendar.timegm(moment.utctimetuple()) + moment.microsecond / 1e6
            except (ValueError, OverflowError):
                seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or seconds > 1e11:
        out.append(("start", f"expected an RFC 3339 time (2024-01-01T00:05:00Z), unix seconds, or omitted "
                             f"(the canary's first sample), got {value!r}"[:300]))
        return None
    return seconds


def _unknown(keys: Iterable[str], out: list[tuple[str, str]]) -> None:
    for key in keys:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(FIELDS)
            out.append((str(key)[:MAX_TEXT], f"unknown field ({hint})"))


def parse_request(data: Any) -> VerdictRequest:
    """Validate a request object (a POST body, or query parameters after ``parse_query``)."""
    if not isinstance(data, Mapping):
        raise RequestError([("", f"expected a JSON object with policy, canary/baseline selection and start, "
                                 f"got {_kind(data)}")])
    out: list[tuple[str, str]] = []
    _unknown(data.keys(), out)
    policy, inline = "", ""
    raw_policy = data.get("policy")
    if isinstance(raw_policy, str):
        if not _POLICY_NAME.match(raw_policy):
            out.append(("policy", "expected a policy name (letters, digits, _ . -) or an inline policy object"))
        policy = raw_policy
    elif isinstance(raw_policy, Mapping):
        try:
            inline = json.dumps(raw_policy, sort_keys=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError):
            out.append(("policy", "an inline policy must be plain JSON"))
    elif raw_policy is None:
        out.append(("policy", "required: a policy name from the policies directory (e.g. http) or an inline policy"))
    else:
        out.append(("policy", f"expected a policy name or an inline policy object, got {_kind(raw_policy)}"))
    start = _start(data.get("start"), out)
    canary = _selector(data.get("canary"), "canary", out)
    baseline = _selector(data.get("baseline"), "baseline", out)
    canary_hash = _text(data.get("canaryHash"), "canaryHash", out)
    stable_key = "stableHash" if data.get("stableHash") not in (None, "") else "baselineHash"
    stable_hash = _text(data.get(stable_key), stable_key, out)
    if data.get("stableHash") not in (None, "") and data.get("baselineHash") not in (None, ""):
        out.append(("baselineHash", "give stableHash or baselineHash, not both"))
    hash_label = _text(data.get("hashLabel"), "hashLabel", out) or DEFAULT_HASH_LABEL
    if data.get("hashLabel") not in (None, ""):
        _label_name(hash_label, "hashLabel", out)
    if bool(canary_hash) != bool(stable_hash):
        missing = "stableHash" if canary_hash else "canaryHash"
        out.append((missing, "canaryHash and stableHash go together (the two pod-template hashes to compare)"))
    namespace = _text(data.get("namespace"), "namespace", out)
    rollout = _text(data.get("rollout"), "rollout", out)
    if out:
        raise RequestError(out)
    if canary_hash:
        canary = _merge(canary, ((hash_label, canary_hash),))
        baseline = _merge(baseline, ((hash_label, stable_hash),))
    return VerdictRequest(policy, inline, start, canary, baseline, namespace, rollout)


def parse_query(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters -> a request object: ``canary.<label>=v`` (repeat for a list), ``policy=name``."""
    data: dict[str, Any] = {}
    for key, value in items:
        arm, dot, label = key.partition(".")
        if dot and arm in ("canary", "baseline"):
            selector = data.setdefault(arm, {})
            if not isinstance(selector, dict):
                raise RequestError([(key, f"give {arm} as {arm}.<label>=<value> parameters")])
            previous = selector.get(label)
            selector[label] = value if previous is None else [*(previous if isinstance(previous, list)
                                                                 else [previous]), value]
        elif key in data:
            raise RequestError([(key, "given more than once")])
        else:
            data[key] = value
    return data


def _merge(base: Labels, extra: Labels) -> Labels:
    merged = dict(base)
    merged.update(extra)
    return tuple(sorted(merged.items()))


# --- policies ------------------------------------------------------------------------------------


class PolicyBook:
    """Named judge policies (``<dir>/<name>.yaml``), parsed once and re-read when the file changes."""

    def __init__(self, directory: Path | None, *, allow_inline: bool = True) -> None:
        self.directory = directory
        self.allow_inline = allow_inline
        self._cache: dict[str, tuple[float, JudgeConfig]] = {}
        self._inline: dict[str, JudgeConfig] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.yaml") if _POLICY_NAME.match(p.stem))

    def get(self, request: VerdictRequest) -> JudgeConfig:
        if request.inline:
            return self._parse_inline(request.inline)
        if self.directory is None:
            raise RequestError([("policy", "this service has no policies directory (--policies); "
                                           "send an inline policy")])
        path = self.directory / f"{request.policy}.yaml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            known = ", ".join(self.names()) or "none"
            raise RequestError([("policy", f"no policy named {request.policy!r} (known: {known})")]) from None
        with self._lock:
            cached = self._cache.get(request.policy)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            config = load_config(path)
        except JudgeInputError as exc:  # the service's own file is broken: say which, not a 500
            raise RequestError([("policy", f"policy {request.policy!r} is invalid: {exc}")]) from None
        with self._lock:
            self._cache[request.policy] = (mtime, config)
        return config

    def _parse_inline(self, text: str) -> JudgeConfig:
        if not self.allow_inline:
            raise RequestError([("policy", "inline policies are disabled on this service; name a policy")])
        with self._lock:
            cached = self._inline.get(text)
        if cached is not None:
            return cached
        try:
            config = parse_config(json.loads(text))
        except JudgeInputError as exc:
            raise RequestError([(_policy_field(p), _policy_reason(p)) for p in exc.problems]) from None
        with self._lock:
            if len(self._inline) > 256:
                self._inline.clear()
            self._inline[text] = config
        return config


def _policy_field(problem: str) -> str:
    where, sep, _ = problem.partition(": ")
    return f"policy.{where}" if sep else "policy"


def _policy_reason(problem: str) -> str:
    _, sep, reason = problem.partition(": ")
    return reason if sep else problem


def resolve(request: VerdictRequest, book: PolicyBook) -> JudgeConfig:
    """The policy with the request's arm selection merged over its arm labels, checked for live use."""
    config = book.get(request)
    arms = {"canary": _merge(_labels(config.arms.get("canary")), request.canary),
            "baseline": _merge(_labels(config.arms.get("baseline")), request.baseline)}
    config = JudgeConfig(config.spec, config.step, {k: dict(v) for k, v in arms.items()}, config.live, config.name)
    problems = []
    for p in live_problems(config):
        where, _, reason = p.partition(": ")
        if where in ("canary", "baseline"):
            problems.append((where, "no label selection for this arm: give canary/baseline labels or "
                                    "canaryHash and stableHash"))
        else:
            problems.append((f"policy.{where}", reason.replace("with --prometheus", "by the service")))
    if arms["canary"] and arms["canary"] == arms["baseline"]:
        problems.append(("baseline", "selects the same series as canary: nothing to compare"))
    steps = config.spec.horizon / config.step
    if steps > MAX_STEPS:
        problems.append(("policy.step", f"horizon / step is {steps:.0f} steps; at most {MAX_STEPS} per request"))
    if problems:
        raise RequestError(problems)
    return config


def _labels(arm: Mapping[str, str | tuple[str, ...]] | None) -> Labels:
    return tuple(sorted((arm or {}).items()))


# --- the verdict ---------------------------------------------------------------------------------


def compute_verdict(request: VerdictRequest, prometheus_url: str, now: float, book: PolicyBook) -> dict[str, Any]:
    """The verdict document as of ``now`` (unix seconds).

    Raises RequestError (the request cannot be analysed as given: 4xx) or LiveError (Prometheus
    could not be queried: the caller answers 503, which Argo counts as an Error measurement).
    Every decided outcome, "fail" and "inconclusive" included, is a return value.
    """
    config = resolve(request, book)
    start = request.start
    horizon = config.spec.horizon
    if start is None:
        start = first_seen(config, prometheus_url, now)
        if start is None:
            window = 2 * horizon + FIRST_SEEN_MARGIN
            return _document(request, config, None, now, None, None,
                             f"no decision yet: no canary series in the last {window:g} s, so the canary has not "
                             "served (or is not scraped); give start to fix the analysis start")
    if start >= now:
        raise RequestError([("start", f"{_rfc3339(start)} is not before the evaluation time {_rfc3339(now)}")])
    until = min(now, start + horizon)  # the judge never looks past the horizon
    steps, _ = fetch_steps(config, prometheus_url, start, until)
    verdict = judge(steps, config.spec)
    return _document(request, config, start, until, steps, verdict, None)


def first_seen(config: JudgeConfig, url: str, now: float) -> float | None:
    """When the canary's first counter series appeared, searched 2 x horizon + 10 min back from now.

    Long enough for any run that ends soon after the horizon (the template's count); a canary
    older than that is judged on the data since the window's start."""
    selector = _canary_selector(config)
    if selector is None:
        raise RequestError([("start", "required with this policy (it has no error-rate or latency metric whose "
                                      "series show when the canary started)")])
    window = int(math.ceil(2 * config.spec.horizon + FIRST_SEEN_MARGIN))
    step = max(1, int(config.step))
    query = f"min(min_over_time(timestamp({selector})[{window}s:{step}s]))"
    try:
        response = httpx.post(url.rstrip("/") + "/api/v1/query", data={"query": query, "time": repr(now)},
                              timeout=10.0)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise LiveError(f"cannot query prometheus at {url}: {type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise LiveError(f"prometheus error for {query!r}: {body.get('error') if isinstance(body, dict) else body!r}")
    result = (body.get("data") or {}).get("result") or []
    if not result:
        return None
    try:
        seen = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise LiveError(f"prometheus answered {query!r} with an unexpected shape") from None
    return seen if math.isfinite(seen) else None


def _canary_selector(config: JudgeConfig) -> str | None:
    arm = config.arms.get("canary", {})
    for metric in config.spec.metrics:
        live = config.live[metric.name]
        source = live.requests or live.successes or live.errors or live.buckets
        if metric.type is not MetricType.SERIES and source:
            return with_arm(source, arm)
    return None


def _document(request: VerdictRequest, config: JudgeConfig, start: float | None, until: float,
              steps: Steps | None, verdict: Verdict | None, why: str | None) -> dict[str, Any]:
    horizon = config.spec.horizon
    if verdict is None or steps is None:
        decision, reasons, metric, decided_at = Decision.INCONCLUSIVE, [why or "no data"], None, None
        metrics = [{"name": m.name, "type": m.type.value, "status": "no-data",
                    "samples": {"canary": 0, "baseline": 0}, "text": f"{m.name}: no canary data"}
                   for m in config.spec.metrics]
        samples: dict[str, float] = {"canary": 0.0, "baseline": 0.0}
        final = False
    else:
        decision, reasons, metric = verdict.decision, list(verdict.reasons), verdict.metric
        decided_at = verdict.decided_at
        reported = {r.name: r.to_json() for r in verdict.metrics}
        metrics = [reported.get(m.name) or _missing_report(steps, m.name, m.type) for m in config.spec.metrics]
        samples = {"canary": _total(steps.canary.requests), "baseline": _total(steps.baseline.requests)}
        final = decision is not Decision.INCONCLUSIVE or (start is not None and until - start >= horizon)
    return {
        "verdict": decision.value,
        "final": final,
        "reason": reasons[0] if reasons else "",
        "reasons": reasons,
        "metric": metric,
        "decidedAt": decided_at,
        "metrics": metrics,
        "samples": samples,
        "policy": config.name or request.policy or "inline",
        "rollout": {"namespace": request.namespace, "name": request.rollout},
        "selection": {"canary": _selection(config.arms.get("canary", {})),
                      "baseline": _selection(config.arms.get("baseline", {}))},
        "start": _rfc3339(start) if start is not None else None,
        "evaluatedAt": _rfc3339(until),
        "elapsed": (until - start) if start is not None else None,
        "horizon": horizon,
    }


def _missing_report(steps: Steps, name: str, kind: MetricType) -> dict[str, Any]:
    view = steps.view(name)
    if kind is MetricType.LATENCY:
        c = float(view.canary.buckets.sum()) if view.canary.buckets is not None else 0.0
        b = float(view.baseline.buckets.sum()) if view.baseline.buckets is not None else 0.0
    elif kind is MetricType.SERIES:
        values = steps.values.get(name)
        c = float((~np.isnan(values[0])).sum()) if values is not None else 0.0
        b = float((~np.isnan(values[1])).sum()) if values is not None else 0.0
    else:
        c, b = _total(view.canary.requests), _total(view.baseline.requests)
    status = "no-data" if c == 0 or b == 0 else "pending"
    return {"name": name, "type": kind.value, "status": status, "samples": {"canary": c, "baseline": b},
            "text": f"{name}: {'no data for an arm' if status == 'no-data' else 'judged at the horizon'}"}


def _total(values: np.ndarray) -> float:
    return float(np.nansum(values))


def _selection(arm: Mapping[str, str | tuple[str, ...]]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in arm.items()}


def _rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- strict JSON ---------------------------------------------------------------------------------


def finite(value: Any) -> Any:
    """A copy with every non-finite number replaced by None and numpy scalars made plain."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [finite(v) for v in value]
    return str(value)


def strict_json(value: Any) -> bytes:
    """UTF-8 JSON that Go's encoding/json accepts: never a bare NaN or Infinity token."""
    return json.dumps(finite(value), allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()
