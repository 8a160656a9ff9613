"""Resource types the fake serves: built-in types with the strategies of their real registries,
and custom resources registered from CustomResourceDefinition YAML files."""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import ipaddress
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import errors as E
from .selectors import label_selector_from_match
from .timefmt import TimeParseError, parse_micro, parse_time

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

Validator = Callable[[dict[str, Any], dict[str, Any] | None], list[E.FieldError]]


@dataclass
class ResourceType:
    group: str
    versions: list[str]
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    list_kind: str = ""
    storage_version: str = ""
    custom: bool = False
    # per served version: subresource name -> spec (for CRDs the CRD's subresources block)
    subresources: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    allow_unconditional_update: bool = True
    allow_create_on_update: bool = False
    generation: str | None = None  # "crd" | "spec" | "spec+annotations" | None
    status_strategy: str = "all-but-status"  # what /status keeps from storage: "all-but-status" | "spec+labels" | "spec"
    strategic_merge: bool = True
    storage_key: tuple[str, str] = ("", "")  # shared storage (core + events.k8s.io Events); default (group, plural)
    micro_time_paths: list[str] = field(default_factory=list)
    time_paths: list[str] = field(default_factory=list)
    field_labels: dict[str, Callable[[dict[str, Any]], str]] = field(default_factory=dict)
    defaulter: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None
    validator: Validator | None = None
    to_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # stored -> served shape
    from_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # served -> stored shape
    crd: dict[str, Any] | None = None
    categories: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.list_kind = self.list_kind or self.kind + "List"
        self.storage_version = self.storage_version or self.versions[0]
        self.storage_key = self.storage_key if self.storage_key != ("", "") else (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return E.qualified(self.plural, self.group)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def has_subresource(self, version: str, name: str) -> bool:
        return name in self.subresources.get(version, {})

    def scale_spec(self, version: str) -> dict[str, Any] | None:
        return self.subresources.get(version, {}).get("scale")

    def schema(self, version: str) -> dict[str, Any] | None:
        return self.schemas.get(version)

    def field_set(self, obj: dict[str, Any]) -> dict[str, str]:
        meta = obj.get("metadata") or {}
        fields = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")} if self.namespaced \
            else {"metadata.name": meta.get("name", "")}
        for label, getter in self.field_labels.items():
            fields[label] = getter(obj)
        return fields

    def supports_field(self, label: str) -> bool:
        if label == "metadata.name":
            return True
        if label == "metadata.namespace":
            return self.namespaced
        return label in self.field_labels


# --------------------------------------------------------------------------- helpers


def dig(obj: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(obj, dict) or p not in obj:
            return default
        obj = obj[p]
    return obj


def _walk_paths(obj: Any, parts: list[str], fn: Callable[[dict, str], None]) -> None:
    """Apply ``fn(parent, key)`` to every value addressed by a dotted path with ``[]`` for lists."""
    if not parts or obj is None:
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        key = head[:-2]
        items = obj.get(key) if isinstance(obj, dict) else None
        if isinstance(items, list):
            for item in items:
                _walk_paths(item, rest, fn)
        return
    if not isinstance(obj, dict) or head not in obj:
        return
    if rest:
        _walk_paths(obj[head], rest, fn)
    else:
        fn(obj, head)


def normalize_times(rt: ResourceType, obj: dict[str, Any], version: str) -> None:
    """Decode-time handling of Time/MicroTime fields: bad shapes are a 400 decode error."""

    def micro(parent: dict, key: str) -> None:
        v = parent[key]
        if v is None or v == "":
            parent.pop(key)
            return
        try:
            parent[key] = parse_micro(v)
        except TimeParseError as exc:
            raise E.bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {exc}') from exc

    def whole(parent: dict, key: str) -> None:
        v = parent[key]
        if v is None or v == "":
            parent.pop(key)
            return
        try:
            parent[key] = parse_time(v)
        except TimeParseError as exc:
            raise E.bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: {exc}') from exc

    for p in rt.micro_time_paths:
        _walk_paths(obj, p.split("."), micro)
    for p in rt.time_paths + ["metadata.creationTimestamp", "metadata.deletionTimestamp", "metadata.managedFields[].time"]:
        _walk_paths(obj, p.split("."), whole)


# --------------------------------------------------------------------------- metadata validation


def validate_labels(labels: Any, path: str) -> list[E.FieldError]:
    errs: list[E.FieldError] = []
    if labels is None:
        return errs
    if not isinstance(labels, dict):
        return [E.type_invalid(path, labels, "must be a map")]
    for k, v in labels.items():
        errs.extend(_qualified_key(k, path))
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            errs.append(E.invalid(path, v, "a valid label must be an empty string or consist of alphanumeric characters, "
                                  "'-', '_' or '.', and must start and end with an alphanumeric character "
                                  "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                                  "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
    return errs


def _qualified_key(key: str, path: str) -> list[E.FieldError]:
    prefix, _, name = key.rpartition("/")
    ok = bool(name) and len(name) <= 63 and QUALIFIED_NAME.match(name) is not None
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        ok = False
    if not ok:
        return [E.invalid(path, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                          "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                          "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]
    return []


def validate_name(name: str, style: str) -> list[E.FieldError]:
    if style == "label":
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            return [E.invalid("metadata.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                              "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                              "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]
    elif style == "1035":
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            return [E.invalid("metadata.name", name, "a DNS-1035 label must consist of lower case alphanumeric characters "
                              "or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
                              "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")]
    elif style == "path":
        if name in (".", "..") or "/" in name or "%" in name:
            return [E.invalid("metadata.name", name, "may not contain '/' or '%'")]
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [E.invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
                          "'example.com', regex used for validation is "
                          "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
    return []


NAME_STYLE = {("", "namespaces"): "label", ("", "services"): "1035", ("", "events"): "path", ("events.k8s.io", "events"): "path"}


def validate_metadata(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    meta = obj.get("metadata") or {}
    errs: list[E.FieldError] = []
    name = meta.get("name", "")
    if not name:
        errs.append(E.required("metadata.name", "name or generateName is required"))
    elif old is None:
        errs.extend(validate_name(name, NAME_STYLE.get((rt.group, rt.plural), "subdomain")))
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    ann = meta.get("annotations")
    if isinstance(ann, dict):
        for k, v in ann.items():
            errs.extend(_qualified_key(k, "metadata.annotations"))
            if not isinstance(v, str):
                errs.append(E.type_invalid("metadata.annotations", v, "must be a string"))
        if sum(len(k) + len(str(v)) for k, v in ann.items()) > 256 * 1024:
            errs.append(E.too_long("metadata.annotations", 256 * 1024))
    fins = meta.get("finalizers") or []
    for i, f in enumerate(fins):
        if not isinstance(f, str) or not _finalizer_ok(f):
            errs.append(E.invalid(f"metadata.finalizers[{i}]", f, "name is neither a standard finalizer name nor is it fully qualified"))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for k in ("apiVersion", "kind", "name", "uid"):
            if not (ref or {}).get(k):
                errs.append(E.invalid(f"metadata.ownerReferences[{i}].{k}", (ref or {}).get(k, ""), f"{k} must not be empty"))
    if old is not None:
        old_meta = old.get("metadata") or {}
        if old_meta.get("deletionTimestamp"):
            new_fins = [f for f in fins if f not in (old_meta.get("finalizers") or [])]
            if new_fins:
                errs.append(E.forbidden("metadata.finalizers", "no new finalizers can be added if the object is being "
                                        f"deleted, found new finalizers []string{{{', '.join(repr(f).replace(chr(39), chr(34)) for f in new_fins)}}}"))
        elif meta.get("deletionTimestamp"):
            errs.append(E.invalid("metadata.deletionTimestamp", meta["deletionTimestamp"], "field is immutable"))
    return errs


def _finalizer_ok(f: str) -> bool:
    if f in ("kubernetes", "orphan", "foregroundDeletion"):
        return True
    if "/" not in f:
        return False
    return not _qualified_key(f, "x")


# --------------------------------------------------------------------------- built-in defaulting/validation


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or tagless else "IfNotPresent")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(c.get(probe), dict):
            pr = c[probe]
            for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
                pr.setdefault(k, v)


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)


def validate_pod_spec(spec: Any, path: str) -> list[E.FieldError]:
    if not isinstance(spec, dict):
        return [E.required(path)]
    errs: list[E.FieldError] = []
    containers = spec.get("containers")
    if not containers:
        return [E.required(f"{path}.containers")]
    names: set[str] = set()
    for i, c in enumerate(containers):
        p = f"{path}.containers[{i}]"
        if not c.get("name"):
            errs.append(E.required(f"{p}.name"))
        elif c["name"] in names:
            errs.append(E.duplicate(f"{p}.name", c["name"]))
        else:
            names.add(c["name"])
            if not DNS1123_LABEL.match(c["name"]):
                errs.append(E.invalid(f"{p}.name", c["name"], "a lowercase RFC 1123 label must consist of lower case "
                                      "alphanumeric characters or '-', and must start and end with an alphanumeric character"))
        if not c.get("image"):
            errs.append(E.required(f"{p}.image"))
        for j, port in enumerate(c.get("ports") or []):
            cp = port.get("containerPort")
            if not isinstance(cp, int) or not 0 < cp < 65536:
                errs.append(E.invalid(f"{p}.ports[{j}].containerPort", cp, "must be between 1 and 65535, inclusive"))
    rp = spec.get("restartPolicy")
    if rp not in (None, "Always", "OnFailure", "Never"):
        errs.append(E.not_supported(f"{path}.restartPolicy", rp, ["Always", "OnFailure", "Never"]))
    return errs


def _int_or_percent(v: Any) -> Any:
    return v


def default_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {})
    if isinstance(tmpl.get("spec"), dict):
        default_pod_spec(tmpl["spec"])


def validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    spec = obj.get("spec") or {}
    errs: list[E.FieldError] = []
    sel = spec.get("selector")
    if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(E.required("spec.selector"))
    else:
        labels = dig(spec, "template", "metadata", "labels", default={}) or {}
        from .selectors import parse_label_selector

        if not parse_label_selector(label_selector_from_match(sel))(labels):
            errs.append(E.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
        if old is not None and dig(old, "spec", "selector") != sel:
            errs.append(E.invalid("spec.selector", sel, "field is immutable"))
    reps = spec.get("replicas")
    if isinstance(reps, int) and reps < 0:
        errs.append(E.invalid("spec.replicas", reps, "must be greater than or equal to 0"))
    errs.extend(validate_pod_spec(dig(spec, "template", "spec"), "spec.template.spec"))
    errs.extend(validate_labels(dig(spec, "template", "metadata", "labels"), "spec.template.metadata.labels"))
    return errs


def default_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if isinstance(obj.get("spec"), dict):
        default_pod_spec(obj["spec"])
    if old is None:
        obj.setdefault("status", {}).setdefault("phase", "Pending")


def validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    return validate_pod_spec(obj.get("spec"), "spec")


_cluster_ips = itertools.count(10)


def default_service(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
    if spec["type"] != "ExternalName":
        if old is not None and dig(old, "spec", "clusterIP"):
            spec.setdefault("clusterIP", old["spec"]["clusterIP"])
        if not spec.get("clusterIP"):
            n = next(_cluster_ips)
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def validate_service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    spec = obj.get("spec") or {}
    errs: list[E.FieldError] = []
    typ = spec.get("type", "ClusterIP")
    if typ not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errs.append(E.not_supported("spec.type", typ, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]))
    ports = spec.get("ports") or []
    if not ports and typ != "ExternalName" and spec.get("clusterIP") != "None":
        errs.append(E.required("spec.ports"))
    for i, p in enumerate(ports):
        port = p.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            errs.append(E.invalid(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive"))
        if len(ports) > 1 and not p.get("name"):
            errs.append(E.required(f"spec.ports[{i}].name"))
    if old is not None:
        old_ip = dig(old, "spec", "clusterIP")
        if old_ip and spec.get("clusterIP") not in (old_ip, None):
            errs.append(E.invalid("spec.clusterIPs[0]", spec.get("clusterIP"), "may not change once set"))
    if spec.get("clusterIP") not in (None, "", "None"):
        try:
            ipaddress.ip_address(spec["clusterIP"])
        except ValueError:
            errs.append(E.invalid("spec.clusterIPs[0]", spec["clusterIP"], "must be a valid IP address"))
    return errs


def default_namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    name = dig(obj, "metadata", "name")
    if name:
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _validate_config_keys(obj: dict[str, Any], fields: tuple[str, ...]) -> list[E.FieldError]:
    errs: list[E.FieldError] = []
    for f in fields:
        for k in (obj.get(f) or {}):
            if not CONFIG_KEY.match(k) or len(k) > 253:
                errs.append(E.invalid(f"{f}[{k}]", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                                      "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                                      "'[-._a-zA-Z0-9]+')"))
    return errs


def validate_configmap(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    return _validate_config_keys(obj, ("data", "binaryData"))


def default_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    errs = _validate_config_keys(obj, ("data",))
    if old is not None and old.get("type") != obj.get("type"):
        errs.append(E.invalid("type", obj.get("type"), "field is immutable"))
    return errs


def decode_secret(obj: dict[str, Any]) -> None:
    for k, v in (obj.get("data") or {}).items():
        try:
            base64.b64decode(v or "", validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise E.bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0 (key {k})') from exc


def validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    spec = obj.get("spec") or {}
    errs: list[E.FieldError] = []
    d = spec.get("leaseDurationSeconds")
    if d is not None and (not isinstance(d, int) or d <= 0):
        errs.append(E.invalid("spec.leaseDurationSeconds", d, "must be greater than 0"))
    t = spec.get("leaseTransitions")
    if t is not None and (not isinstance(t, int) or t < 0):
        errs.append(E.invalid("spec.leaseTransitions", t, "must be greater than or equal to 0"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errs.append(E.forbidden("spec.preferredHolder", "preferredHolder is only allowed if strategy is set"))
    h = spec.get("holderIdentity")
    if h is not None and not isinstance(h, str):
        errs.append(E.type_invalid("spec.holderIdentity", h, "must be a string"))
    return errs


def default_hpa(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    beh = spec.get("behavior")
    if isinstance(beh, dict):
        up = beh.setdefault("scaleUp", {})
        up.setdefault("stabilizationWindowSeconds", 0)
        up.setdefault("selectPolicy", "Max")
        up.setdefault("policies", [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}])
        down = beh.setdefault("scaleDown", {})
        down.setdefault("selectPolicy", "Max")
        down.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])


def validate_hpa(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    spec = obj.get("spec") or {}
    errs: list[E.FieldError] = []
    ref = spec.get("scaleTargetRef") or {}
    for k in ("kind", "name"):
        if not ref.get(k):
            errs.append(E.required(f"spec.scaleTargetRef.{k}"))
    mn, mx = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if isinstance(mn, int) and mn < 1:
        errs.append(E.invalid("spec.minReplicas", mn, "must be greater than or equal to 1"))
    if not isinstance(mx, int):
        errs.append(E.required("spec.maxReplicas"))
    elif isinstance(mn, int) and mx < mn:
        errs.append(E.invalid("spec.maxReplicas", mx, "must be greater than or equal to `minReplicas`"))
    return errs


# core/v1 Event <-> events.k8s.io/v1 Event (both served from one registry, stored as core/v1)
EVENT_FIELD_MAP = [
    ("involvedObject", "regarding"), ("message", "note"), ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"), ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"), ("count", "deprecatedCount"),
]  # fmt: skip


def event_to_v1(stored: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(stored)
    for core, new in EVENT_FIELD_MAP:
        if core in out:
            out[new] = out.pop(core)
    return out


def event_from_v1(view: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(view)
    for core, new in EVENT_FIELD_MAP:
        out.pop(core, None)
        if new in out:
            out[core] = out.pop(new)
    return out


def validate_core_event(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    errs: list[E.FieldError] = []
    ns = dig(obj, "metadata", "namespace")
    inv_ns = dig(obj, "involvedObject", "namespace")
    if inv_ns and ns and inv_ns != ns:
        errs.append(E.invalid("involvedObject.namespace", inv_ns, "does not match event.namespace"))
    if obj.get("type") not in (None, "", "Normal", "Warning"):
        errs.append(E.not_supported("type", obj.get("type"), ["Normal", "Warning"]))
    return errs


def validate_events_v1(obj: dict[str, Any], old: dict[str, Any] | None) -> list[E.FieldError]:
    """events.k8s.io/v1 rules; ``obj`` is in the events.k8s.io shape."""
    errs: list[E.FieldError] = []
    if old is None:
        if not obj.get("eventTime"):
            errs.append(E.required("eventTime"))
        for f in ("reportingController", "reportingInstance", "action", "reason"):
            if not obj.get(f):
                errs.append(E.required(f))
        if obj.get("type") not in ("Normal", "Warning"):
            errs.append(E.not_supported("type", obj.get("type", ""), ["Normal", "Warning"]))
    if len((obj.get("note") or "").encode()) > 1024:
        errs.append(E.too_long("note", 1024))
    return errs


def _event_label(*path: str) -> Callable[[dict[str, Any]], str]:
    return lambda obj: str(dig(obj, *path, default="") or "")


EVENT_FIELD_LABELS = {
    "involvedObject.kind": _event_label("involvedObject", "kind"),
    "involvedObject.namespace": _event_label("involvedObject", "namespace"),
    "involvedObject.name": _event_label("involvedObject", "name"),
    "involvedObject.uid": _event_label("involvedObject", "uid"),
    "involvedObject.apiVersion": _event_label("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": _event_label("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": _event_label("involvedObject", "fieldPath"),
    "reason": _event_label("reason"),
    "reportingComponent": _event_label("reportingComponent"),
    "source": _event_label("source", "component"),
    "type": _event_label("type"),
}
POD_FIELD_LABELS = {
    "spec.nodeName": _event_label("spec", "nodeName"),
    "spec.restartPolicy": _event_label("spec", "restartPolicy"),
    "spec.schedulerName": _event_label("spec", "schedulerName"),
    "spec.serviceAccountName": _event_label("spec", "serviceAccountName"),
    "status.phase": _event_label("status", "phase"),
    "status.podIP": _event_label("status", "podIP"),
    "status.nominatedNodeName": _event_label("status", "nominatedNodeName"),
}


def builtin_types() -> list[ResourceType]:
    status = {"v1": {"status": {}}}
    return [
        ResourceType("", ["v1"], "namespaces", "Namespace", namespaced=False, short_names=["ns"], subresources=status,
                     defaulter=default_namespace, status_strategy="spec",
                     field_labels={"status.phase": _event_label("status", "phase")}),
        ResourceType("", ["v1"], "pods", "Pod", short_names=["po"], subresources=status, generation="spec",
                     defaulter=default_pod, validator=validate_pod, status_strategy="spec", field_labels=POD_FIELD_LABELS,
                     time_paths=["status.startTime", "status.conditions[].lastTransitionTime", "status.conditions[].lastProbeTime"]),
        ResourceType("", ["v1"], "services", "Service", short_names=["svc"], subresources=status,
                     allow_create_on_update=True, defaulter=default_service, validator=validate_service, status_strategy="spec"),
        ResourceType("", ["v1"], "configmaps", "ConfigMap", short_names=["cm"], validator=validate_configmap),
        ResourceType("", ["v1"], "secrets", "Secret", defaulter=default_secret, validator=validate_secret,
                     field_labels={"type": _event_label("type")}),
        ResourceType("", ["v1"], "events", "Event", short_names=["ev"], allow_create_on_update=True,
                     validator=validate_core_event, field_labels=EVENT_FIELD_LABELS,
                     micro_time_paths=["eventTime", "series.lastObservedTime"], time_paths=["firstTimestamp", "lastTimestamp"]),
        ResourceType("events.k8s.io", ["v1"], "events", "Event", short_names=["ev"], allow_create_on_update=True,
                     storage_key=("", "events"), to_view=event_to_v1, from_view=event_from_v1,
                     validator=validate_events_v1, field_labels=EVENT_FIELD_LABELS,
                     micro_time_paths=["eventTime", "series.lastObservedTime"],
                     time_paths=["deprecatedFirstTimestamp", "deprecatedLastTimestamp"]),
        ResourceType("apps", ["v1"], "deployments", "Deployment", short_names=["deploy"],
                     subresources={"v1": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                   "statusReplicasPath": ".status.replicas",
                                                                   "labelSelectorPath": ".status.selector"}}},
                     generation="spec+annotations", status_strategy="spec+labels", defaulter=default_deployment,
                     validator=validate_deployment,
                     time_paths=["status.conditions[].lastUpdateTime", "status.conditions[].lastTransitionTime"]),
        ResourceType("autoscaling", ["v2"], "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=["hpa"],
                     subresources={"v2": {"status": {}}}, status_strategy="spec", defaulter=default_hpa, validator=validate_hpa,
                     time_paths=["status.lastScaleTime", "status.conditions[].lastTransitionTime"]),
        ResourceType("coordination.k8s.io", ["v1"], "leases", "Lease", allow_unconditional_update=False,
                     allow_create_on_update=True, validator=validate_lease,
                     micro_time_paths=["spec.acquireTime", "spec.renewTime"]),
        ResourceType("apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "CustomResourceDefinition",
                     namespaced=False, short_names=["crd", "crds"], subresources={"v1": {"status": {}}},
                     generation="spec", status_strategy="spec"),
    ]


# --------------------------------------------------------------------------- CRDs


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as fh:
        return [d for d in yaml.load_all(fh, Loader=loader) if isinstance(d, dict)]


@functools.lru_cache(maxsize=64)
def _cached_crds(path: str, mtime: float) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in _load_yaml_docs(Path(path)) if d.get("kind") == "CustomResourceDefinition")


def load_crd_documents(*paths: str | Path) -> list[dict[str, Any]]:
    """CRD documents from YAML files or directories of YAML files (parsed once per file)."""
    out: list[dict[str, Any]] = []
    for p in paths:
        p = Path(p)
        files = sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml"))) if p.is_dir() else [p]
        for f in files:
            # shared, parsed once per file: the fake never mutates CRD documents or schemas in place
            out.extend(_cached_crds(str(f.resolve()), f.stat().st_mtime))
    return out


def crd_resource_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    storage = next((v["name"] for v in spec["versions"] if v.get("storage")), served[0]["name"])
    subresources = {v["name"]: dict(v.get("subresources") or spec.get("subresources") or {}) for v in served}
    schemas = {}
    for v in served:
        sch = (v.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        schemas[v["name"]] = sch or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return ResourceType(
        group=spec["group"], versions=[v["name"] for v in served], plural=names["plural"], kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", singular=names.get("singular", ""),
        short_names=list(names.get("shortNames") or []), list_kind=names.get("listKind", ""), storage_version=storage,
        custom=True, subresources=subresources, schemas=schemas, allow_unconditional_update=False,
        generation="crd", status_strategy="all-but-status", strategic_merge=False, crd=crd,
        categories=list(names.get("categories") or []),
    )
