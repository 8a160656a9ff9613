"""AnalysisTemplate / ClusterAnalysisTemplate / AnalysisRun -> RunSpec, with lint.

Parsing collects every problem with its field path (``spec.metrics[1].interval``) instead of
stopping at the first. Fields that still hold ``{{args.x}}`` placeholders are checked after
substituting a dummy value, since their real value only exists at run time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.argo.errors import FieldError, Problems, TemplateError
from analyzer.core.analysis import RunSpec
from analyzer.core.args import Arg, placeholders
from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.expressions import ExpressionError, check
from analyzer.core.metric import EXTENSION_PROVIDER_KINDS, PROVIDER_KINDS, SpecInvalid, build_metrics

API_VERSION = "argoproj.io/v1alpha1"
KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")
SUPPORTED_PROVIDERS = ("prometheus", "web", "judge")

_TOP = {"apiVersion", "kind", "metadata", "spec", "status"}
_SPEC = {"metrics", "args", "dryRun", "measurementRetention", "templates", "terminate", "ttlStrategy"}
_METRIC = {"name", "interval", "initialDelay", "count", "successCondition", "failureCondition", "failureLimit",
           "inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit", "provider"}
_ARG = {"name", "value", "valueFrom"}
_PROMETHEUS = {"address", "query", "timeout", "insecure", "headers", "authentication", "rangeQuery"}
_WEB = {"url", "method", "headers", "body", "jsonBody", "timeoutSeconds", "insecure", "jsonPath",
        "authentication"}
_INT_FIELDS = ("count", "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit")
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.S)
_DUMMY = "1"


@dataclass
class Template:
    kind: str
    name: str
    spec: RunSpec
    raw: Mapping[str, Any]
    template_refs: list[tuple[str, bool]] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)

    def declared_args(self) -> dict[str, Arg]:
        return {a.name: a for a in self.spec.args}


def _dummy(text: str) -> str:
    return _PLACEHOLDER.sub(_DUMMY, text)


def parse_spec_dict(spec: Mapping[str, Any], c: Problems, base: str) -> RunSpec:
    metrics_raw = spec.get("metrics")
    metrics: list[Mapping[str, Any]] = []
    if metrics_raw is None:
        if not spec.get("templates"):
            c.err(f"{base}.metrics", "required field is missing (at least one metric)")
    elif not isinstance(metrics_raw, list):
        c.err(f"{base}.metrics", "must be a list of metrics")
    else:
        for i, m in enumerate(metrics_raw):
            if not isinstance(m, Mapping):
                c.err(f"{base}.metrics[{i}]", "must be a mapping")
                continue
            metrics.append(m)
    args = _parse_args(spec.get("args"), c, f"{base}.args")
    dry_run = tuple(_parse_rules(spec.get("dryRun"), c, f"{base}.dryRun", with_limit=False))
    retention = _parse_rules(spec.get("measurementRetention"), c, f"{base}.measurementRetention", with_limit=True)
    terminate = spec.get("terminate", False)
    if not isinstance(terminate, bool):
        c.err(f"{base}.terminate", "must be true or false")
        terminate = False
    return RunSpec(metrics=tuple(metrics), args=tuple(args), dry_run=tuple(p for p, _ in dry_run),
                   retention=tuple(retention), terminate=terminate)


def _parse_args(raw: Any, c: Problems, path: str) -> list[Arg]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        c.err(path, "must be a list of {name, value} arguments")
        return []
    out: list[Arg] = []
    seen: set[str] = set()
    for i, a in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(a, Mapping):
            c.err(p, "must be a mapping with a name")
            continue
        c.unknown(a, _ARG, p)
        name = a.get("name")
        if not isinstance(name, str) or not name:
            c.err(f"{p}.name", "required field is missing")
            continue
        if name in seen:
            c.err(f"{p}.name", f"argument '{name}' is declared twice")
        seen.add(name)
        value = a.get("value")
        if value is not None and not isinstance(value, str):
            if isinstance(value, Mapping | list):
                c.err(f"{p}.value", "must be a string")
            else:
                c.warn(f"{p}.value", f"Kubernetes expects a string here: quote it (\"{value}\")")
            value = str(value).lower() if isinstance(value, bool) else str(value)
        secret_name = secret_key = None
        vf = a.get("valueFrom")
        if vf is not None:
            if not isinstance(vf, Mapping):
                c.err(f"{p}.valueFrom", "must be a mapping")
            elif "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                if not isinstance(ref, Mapping) or not ref.get("name") or not ref.get("key"):
                    c.err(f"{p}.valueFrom.secretKeyRef", "needs both name and key")
                else:
                    secret_name, secret_key = str(ref["name"]), str(ref["key"])
            elif "fieldRef" in vf or "podTemplateHashValue" in vf:
                c.warn(f"{p}.valueFrom", "resolved by the Rollout controller; supply the value with --arg")
            else:
                c.err(f"{p}.valueFrom", "expected secretKeyRef, fieldRef or podTemplateHashValue")
        out.append(Arg(name=name, value=value, secret_name=secret_name, secret_key=secret_key))
    return out


def _parse_rules(raw: Any, c: Problems, path: str, with_limit: bool) -> list[tuple[str, int]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        c.err(path, "must be a list of {metricName} rules")
        return []
    out: list[tuple[str, int]] = []
    for i, rule in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(rule, Mapping) or not isinstance(rule.get("metricName"), str):
            c.err(f"{p}.metricName", "required field is missing")
            continue
        c.unknown(rule, {"metricName", "limit"} if with_limit else {"metricName"}, p)
        limit = rule.get("limit", 0)
        if with_limit and (not isinstance(limit, int) or isinstance(limit, bool)):
            c.err(f"{p}.limit", "must be an integer")
            limit = 0
        out.append((rule["metricName"], int(limit)))
    return out


def _lint_metric(m: Mapping[str, Any], c: Problems, path: str, declared: set[str]) -> None:
    c.unknown(m, _METRIC, path)
    name = m.get("name")
    if not isinstance(name, str) or not name:
        c.err(f"{path}.name", "required field is missing")
    for key in ("interval", "initialDelay"):
        v = m.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            c.err(f"{path}.{key}", f"must be a duration string like \"30s\" or \"5m\", got {v!r}")
            continue
        try:
            parse_go_duration_seconds(_dummy(v) + ("s" if _PLACEHOLDER.fullmatch(v) else ""))
        except ValueError as exc:
            c.err(f"{path}.{key}", f"invalid duration: {exc}")
    for key in _INT_FIELDS:
        v = m.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | str):
            c.err(f"{path}.{key}", f"must be an integer, got {v!r}")
        elif isinstance(v, str) and not _PLACEHOLDER.search(v) and not re.fullmatch(r"\s*[+-]?\d+\s*", v):
            c.err(f"{path}.{key}", f"must be an integer or an {{{{args.x}}}} placeholder, got {v!r}")
    for key in ("successCondition", "failureCondition"):
        v = m.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            c.err(f"{path}.{key}", "must be a string expression")
            continue
        try:
            check(_dummy(v))
        except ExpressionError as exc:
            col = f" at column {exc.column}" if exc.column else ""
            text = f"invalid expression{col}: {exc.message} (in {v!r})"
            if exc.message.startswith("unknown name"):
                # Argo accepts it; every measurement will then be an Error.
                c.warn(f"{path}.{key}", text + "; every measurement will be Error")
            else:
                c.err(f"{path}.{key}", text)
    _lint_provider(m.get("provider"), c, f"{path}.provider")
    _lint_placeholders(m, c, path, declared)


def _lint_provider(p: Any, c: Problems, path: str) -> None:
    if p is None:
        c.err(path, "required field is missing (one of: " + ", ".join(PROVIDER_KINDS) + ")")
        return
    if not isinstance(p, Mapping):
        c.err(path, "must be a mapping with exactly one provider")
        return
    kinds = [k for k, v in p.items() if v is not None]
    for k in kinds:
        if k not in PROVIDER_KINDS:
            c.err(f"{path}.{k}", "unknown provider (expected one of: " + ", ".join(PROVIDER_KINDS) + ")")
    if not kinds:
        c.err(path, "no provider specified")
    elif len(kinds) > 1:
        c.err(path, "multiple providers specified: " + ", ".join(kinds))
    for k in kinds:
        block = p[k]
        if k in PROVIDER_KINDS and k not in SUPPORTED_PROVIDERS:
            c.warn(f"{path}.{k}", f"provider '{k}' is not supported by rollout-analyzer: its measurements "
                                  "will be Error (supported: prometheus, web, judge)")
        if k in EXTENSION_PROVIDER_KINDS:
            c.warn(f"{path}.{k}", f"provider '{k}' is a rollout-analyzer extension for ModelRollouts; Argo Rollouts "
                                  "ignores it (with Argo, use templates/canary-judge.yaml and the web provider)")
        if k == "prometheus":
            _lint_prometheus(block, c, f"{path}.prometheus")
        elif k == "web":
            _lint_web(block, c, f"{path}.web")


def _lint_prometheus(b: Any, c: Problems, path: str) -> None:
    if not isinstance(b, Mapping):
        c.err(path, "must be a mapping")
        return
    c.unknown(b, _PROMETHEUS, path)
    if not isinstance(b.get("query"), str) or not b.get("query", "").strip():
        c.warn(f"{path}.query", "no query: every measurement will be Error")
    timeout = b.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
        c.err(f"{path}.timeout", "must be a non-negative whole number of seconds")
    rq = b.get("rangeQuery")
    if rq is not None:
        if not isinstance(rq, Mapping):
            c.err(f"{path}.rangeQuery", "must be a mapping with start, end and step")
        else:
            c.unknown(rq, {"start", "end", "step"}, f"{path}.rangeQuery")
            for key in ("start", "end", "step"):
                if not isinstance(rq.get(key), str):
                    c.err(f"{path}.rangeQuery.{key}", "required field is missing")
            if isinstance(rq.get("step"), str) and not _PLACEHOLDER.search(rq["step"]):
                try:
                    parse_go_duration_seconds(rq["step"])
                except ValueError as exc:
                    c.err(f"{path}.rangeQuery.step", f"invalid duration: {exc}")


def _lint_web(b: Any, c: Problems, path: str) -> None:
    if not isinstance(b, Mapping):
        c.err(path, "must be a mapping")
        return
    c.unknown(b, _WEB, path)
    if not isinstance(b.get("url"), str) or not b.get("url"):
        c.warn(f"{path}.url", "no url: every measurement will be Error")
    if "body" in b and "jsonBody" in b:
        c.err(path, "use either body or jsonBody, not both")
    method = str(b.get("method", "GET")).upper()
    if ("body" in b or "jsonBody" in b) and method not in ("POST", "PUT"):
        c.err(f"{path}.method", "body/jsonBody can only be used with POST or PUT")


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, Mapping):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def _lint_placeholders(m: Mapping[str, Any], c: Problems, path: str, declared: set[str]) -> None:
    for text in _strings(m):
        if "{{" in text and "}}" not in text[text.find("{{"):]:
            c.err(path, f"unclosed '{{{{' in {text!r}")
        for tag in placeholders(text):
            if not tag.startswith("args."):
                c.err(path, f"unknown placeholder {{{{{tag}}}}}: only {{{{args.<name>}}}} is supported")
            elif tag[5:] not in declared:
                c.err(path, f"{{{{{tag}}}}} refers to argument '{tag[5:]}', which spec.args does not declare")


def parse_template(doc: Mapping[str, Any], source: str = "", *, bare_ok: bool = False) -> Template:
    """Parse one Argo object; raises TemplateError with every problem found."""
    c = Problems()
    if bare_ok and "metrics" in doc and "spec" not in doc:
        doc = {"apiVersion": API_VERSION, "kind": "AnalysisTemplate", "metadata": {}, "spec": doc}
    c.unknown(doc, _TOP, "")
    if doc.get("apiVersion") != API_VERSION:
        c.err("apiVersion", f"must be {API_VERSION}, got {doc.get('apiVersion')!r}")
    kind = doc.get("kind")
    if kind not in KINDS:
        c.err("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", "")) if isinstance(meta, Mapping) else ""
    if not name and not (isinstance(meta, Mapping) and meta.get("generateName")):
        c.warn("metadata.name", "no name: Kubernetes will need one (or --name) before applying")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        c.err("spec", "required field is missing")
        raise TemplateError(source, c.errors + c.warnings)
    c.unknown(spec, _SPEC, "spec")
    run_spec = parse_spec_dict(spec, c, "spec")
    declared = {a.name for a in run_spec.args}
    for i, m in enumerate(run_spec.metrics):
        _lint_metric(m, c, f"spec.metrics[{i}]", declared)
    refs = _template_refs(spec.get("templates"), c)
    if not c.errors:
        _argo_validation(run_spec, c)
    if c.errors:
        raise TemplateError(source, c.errors + c.warnings)
    return Template(kind=str(kind), name=name, spec=run_spec, raw=doc, template_refs=refs, warnings=c.warnings)


def _template_refs(raw: Any, c: Problems) -> list[tuple[str, bool]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        c.err("spec.templates", "must be a list of {templateName, clusterScope}")
        return []
    refs = []
    for i, t in enumerate(raw):
        if not isinstance(t, Mapping) or not isinstance(t.get("templateName"), str):
            c.err(f"spec.templates[{i}].templateName", "required field is missing")
            continue
        c.unknown(t, {"templateName", "clusterScope"}, f"spec.templates[{i}]")
        refs.append((t["templateName"], bool(t.get("clusterScope", False))))
    return refs


def _argo_validation(spec: RunSpec, c: Problems) -> None:
    """Argo's own ValidateMetric rules, on the metrics whose numbers are already concrete."""
    concrete = [m for m in spec.metrics if not any(_PLACEHOLDER.search(s) for s in _strings(
        {k: m.get(k) for k in ("interval", "initialDelay", *_INT_FIELDS)}))]
    for i, m in enumerate(spec.metrics):
        if m not in concrete:
            continue
        try:
            build_metrics([m])
        except SpecInvalid as exc:
            c.err(f"spec.metrics[{i}]", str(exc).removeprefix("metrics[0]: "))
    names = [str(m.get("name", "")) for m in spec.metrics]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        c.err("spec.metrics", f"duplicate metric name '{dup}'")
    for field_name, rules in (("dryRun", spec.dry_run), ("measurementRetention", [p for p, _ in spec.retention])):
        for i, pattern in enumerate(rules):
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                hint = " (use '.*' to match every metric)" if pattern.strip() == "*" else ""
                c.err(f"spec.{field_name}[{i}].metricName", f"invalid regular expression {pattern!r}: {exc}{hint}")
                continue
            if names and not any(rx.search(n) for n in names):
                c.err(f"spec.{field_name}[{i}].metricName", f"rule {pattern!r} matches no metric name")


def merge_args(template: Template, supplied: Mapping[str, str], time_scale: float = 1.0) -> tuple[RunSpec, list[str]]:
    """Apply caller-supplied values by name (Argo: undeclared names are dropped; we report them)."""
    declared = template.declared_args()
    unknown = [k for k in supplied if k not in declared]
    args = tuple(Arg(a.name, supplied.get(a.name, a.value), a.secret_name, a.secret_key)
                 for a in template.spec.args)
    spec = RunSpec(metrics=template.spec.metrics, args=args, dry_run=template.spec.dry_run,
                   retention=template.spec.retention, terminate=template.spec.terminate, time_scale=time_scale)
    return spec, unknown


def missing_args(spec: RunSpec) -> list[str]:
    return [a.name for a in spec.args if not a.has_source]
