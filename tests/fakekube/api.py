"""The API semantics of the fake, independent of HTTP: routing, CRUD, patch, apply, status and
scale subresources, deletion with finalizers, list and watch.

``ApiServer.handle`` takes a request and returns a ``Response`` (a JSON body, or a ``WatchStream``
for watch requests).  Section numbers in comments refer to /work/shared/kube-api-semantics.md.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import yaml

from . import errors as E
from . import schema as S
from .patch import PatchError, json_equal, json_patch, merge_patch, strategic_merge_patch
from .resources import (
    ResourceType,
    builtin_types,
    crd_resource_type,
    decode_secret,
    dig,
    normalize_times,
    validate_metadata,
)
from .selectors import label_selector_from_match, parse_field_selector, parse_label_selector
from .store import Key, Store, StoreEvent
from .timefmt import now_time

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"

GIT_VERSION = {
    "major": "1", "minor": "34", "gitVersion": "v1.34.0-fakekube", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
    "platform": "linux/amd64",
}  # fmt: skip

AdmissionHook = Callable[[str, ResourceType, dict[str, Any], dict[str, Any] | None], list[E.FieldError] | None]


@dataclass
class Response:
    code: int
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: WatchStream | None = None


@dataclass
class Ctx:
    rt: ResourceType
    version: str
    namespace: str
    name: str
    sub: str
    query: dict[str, str]
    headers: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def field_validation(self) -> str:
        return self.query.get("fieldValidation") or "Warn"

    @property
    def manager(self) -> str:
        if self.query.get("fieldManager"):
            return self.query["fieldManager"]
        agent = self.headers.get("user-agent", "")
        return agent.split("/", 1)[0] if agent else "unknown"


def _q(query: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[-1] for k, v in query.items()}


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("true", "1")


class ApiServer:
    def __init__(self, store: Store | None = None, *, garbage_collection: bool = True, bookmark_interval: float = 1.0,
                 default_watch_timeout: float = 1800.0, too_large_rv_wait: float = 3.0, seed: int | None = None):
        self.store = store or Store(seed=seed)
        self.types: dict[tuple[str, str, str], ResourceType] = {}  # (group, version, plural) -> type
        self.garbage_collection = garbage_collection
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.too_large_rv_wait = too_large_rv_wait
        self.admission_hooks: list[AdmissionHook] = []
        self.owners: dict[Key, dict[tuple[str, str], set[tuple[str, ...]]]] = {}
        self._rng = random.Random(seed)
        self._ns_cleanup: set[str] = set()
        for rt in builtin_types():
            self._register(rt)

    # ================================================================== registration

    def _register(self, rt: ResourceType) -> None:
        for v in rt.versions:
            self.types[(rt.group, v, rt.plural)] = rt

    def register_crd(self, crd: dict[str, Any], store_object: bool = True) -> ResourceType:
        rt = crd_resource_type(crd)
        with self.store.lock:
            for k in [k for k, t in self.types.items() if t.storage_key == rt.storage_key]:
                del self.types[k]
            self._register(rt)
            if store_object:
                key: Key = (("apiextensions.k8s.io", "customresourcedefinitions"), "", crd["metadata"]["name"])
                obj = dict(crd)  # spec is shared with the parsed file, never mutated in place
                obj["metadata"] = copy.deepcopy(crd.get("metadata") or {})
                obj.setdefault("apiVersion", "apiextensions.k8s.io/v1")
                obj.setdefault("kind", "CustomResourceDefinition")
                self._fill_crd_status(obj)
                existing = self.store.get(key)
                if existing is None:
                    self._stamp_new(obj, self.types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")])
                    self.store.put(key, obj, "ADDED")
                else:
                    obj["metadata"].update({k: existing["metadata"][k] for k in ("uid", "creationTimestamp") if k in existing["metadata"]})
                    obj["metadata"]["generation"] = existing["metadata"].get("generation", 1)
                    if not json_equal(obj, existing):
                        self.store.put(key, obj, "MODIFIED")
        return rt

    @staticmethod
    def _fill_crd_status(crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        t = now_time()
        crd["status"] = {
            "acceptedNames": copy.deepcopy(spec.get("names") or {}),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": t},
            ],
            "storedVersions": storage,
        }

    def unregister_crd(self, group: str, plural: str) -> None:
        with self.store.lock:
            for k in [k for k, t in self.types.items() if t.storage_key == (group, plural)]:
                del self.types[k]
            for key, _ in self.store.items((group, plural)):
                self.store.remove(key)

    def resource_types(self) -> list[ResourceType]:
        seen: dict[int, ResourceType] = {}
        for rt in self.types.values():
            seen[id(rt)] = rt
        return list(seen.values())

    def find_type(self, api_version: str, kind_or_plural: str) -> tuple[ResourceType, str]:
        group, _, version = api_version.rpartition("/")
        for (g, v, plural), rt in self.types.items():
            if g == group and v == version and kind_or_plural in (plural, rt.kind, rt.singular):
                return rt, v
        raise KeyError(f"no resource {kind_or_plural} in {api_version}")

    # ================================================================== views

    def view(self, rt: ResourceType, version: str, stored: dict[str, Any], with_type: bool = True) -> dict[str, Any]:
        obj = rt.to_view(stored) if rt.to_view else copy.deepcopy(stored)
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        if with_type:
            return {"apiVersion": rt.api_version(version), "kind": rt.kind, **obj}
        return obj

    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        return (rt.storage_key, namespace if rt.namespaced else "", name)  # type: ignore[return-value]

    # ================================================================== entry point

    def handle(self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes) -> Response:
        try:
            query = _q(parse_qs(query_string, keep_blank_values=True))
            return self._route(method.upper(), path.rstrip("/") or "/", query, {k.lower(): v for k, v in headers.items()}, body)
        except E.ApiError as err:
            return Response(err.code, err.status)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, "ok")
        if path == "/version":
            return Response(200, GIT_VERSION)
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                return Response(200, {"kind": "APIVersions", "versions": ["v1"],
                                      "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"]:
            if len(parts) == 1:
                return Response(200, self._api_group_list())
            if len(parts) == 2:
                return Response(200, self._api_group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if not rest:
            return Response(200, self._resource_list(group, version))
        return self._resource_request(method, group, version, rest, query, headers, body)

    # ================================================================== discovery

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for g, v, _ in self.types:
            if g:
                vs = groups.setdefault(g, [])
                if v not in vs:
                    vs.append(v)
        return groups

    def _group_entry(self, g: str, versions: list[str]) -> dict[str, Any]:
        preferred = next((rt.storage_version for (gg, _, _), rt in self.types.items() if gg == g), versions[0])
        return {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{g}/{preferred}", "version": preferred}}

    def _api_group_list(self) -> dict[str, Any]:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self._group_entry(g, vs) for g, vs in sorted(self._groups().items())]}

    def _api_group(self, group: str) -> dict[str, Any]:
        vs = self._groups().get(group)
        if not vs:
            raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(group, vs)}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for (g, v, plural), rt in sorted(self.types.items()):
            if g != group or v != version:
                continue
            resources.append({"name": plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                              "verbs": rt.verbs, "shortNames": rt.short_names, **({"categories": rt.categories} if rt.categories else {})})
            for sub in rt.subresources.get(v, {}):
                resources.append({"name": f"{plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": "Scale" if sub == "scale" else rt.kind, "verbs": ["get", "patch", "update"],
                                  **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {})})
        if not resources:
            raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    # ================================================================== resource routing

    def _resource_request(self, method: str, group: str, version: str, rest: list[str], query: dict[str, str],
                          headers: dict[str, str], body: bytes) -> Response:
        namespace = ""
        if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
        if len(rest) > 3:
            raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        rt = self.types.get((group, version, plural))
        if rt is None:
            raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if namespace and not rt.namespaced:
            raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        ctx = Ctx(rt, version, namespace, name, sub, query, headers)
        if sub:
            if sub == "finalize" and rt.plural == "namespaces" and method == "PUT":
                return self._update(ctx, body)
            if not rt.has_subresource(version, sub):
                raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
            if method not in ("GET", "PUT", "PATCH"):
                raise E.method_not_allowed()
            if sub == "scale":
                return self._scale(ctx, method, body)
        if rt.namespaced and not namespace and (name or method not in ("GET",)):
            raise E.method_not_allowed() if not name else E.ApiError(404, "the server could not find the requested resource", "NotFound", {})
        if method == "GET":
            if name:
                return self._get(ctx)
            if _truthy(query.get("watch")):
                return self._watch(ctx)
            return self._list(ctx)
        if method == "POST":
            if name:
                raise E.method_not_allowed()
            return self._create(ctx, body)
        if method == "PUT":
            if not name:
                raise E.method_not_allowed()
            return self._update(ctx, body)
        if method == "PATCH":
            if not name:
                raise E.method_not_allowed()
            return self._patch(ctx, body)
        if method == "DELETE":
            if name:
                return self._delete(ctx, body)
            return self._delete_collection(ctx, body)
        raise E.method_not_allowed()

    # ================================================================== decoding

    def _decode_json(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise E.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    def _decode_object(self, ctx: Ctx, obj: Any, *, patch_text: str | None = None) -> dict[str, Any]:
        """Type checks, Time/MicroTime decoding, CR pruning/defaulting. Returns the stored shape."""
        rt = ctx.rt
        if not isinstance(obj, dict):
            if patch_text is not None:
                raise E.invalid_error(rt.kind, rt.group, ctx.name, [E.invalid("patch", patch_text, "couldn't decode the patched object")])
            raise E.bad_request(f"the object provided is unrecognized (must be of type {rt.kind})")
        want_av = rt.api_version(ctx.version)
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if rt.custom:
            if not kind:
                raise E.bad_request(f"Object 'Kind' is missing in '{json.dumps(obj, separators=(',', ':'))}'")
            if av != want_av:
                raise E.bad_request(f"the API version in the data ({av}) does not match the expected API version ({want_av})")
            if kind != rt.kind:
                raise E.invalid_error(rt.kind, rt.group, dig(obj, "metadata", "name", default=""),
                                      [E.invalid("kind", kind, f"must be {rt.kind}")])
        else:
            if av and av != want_av:
                raise E.bad_request(f"the API version in the data ({av}) does not match the expected API version ({want_av})")
            if kind and kind != rt.kind:
                raise E.bad_request(f'{rt.kind} in version "{ctx.version}" cannot be handled as a {rt.kind}: '
                                    f'kind {kind} does not match {rt.kind}')
        obj = S.normalize_numbers(copy.deepcopy(obj))
        if not isinstance(obj.get("metadata", {}), dict):
            raise E.bad_request(f'{rt.kind} in version "{ctx.version}" cannot be handled as a {rt.kind}: metadata must be an object')
        obj.setdefault("metadata", {})
        normalize_times(rt, obj, ctx.version)
        if rt.plural == "secrets":
            decode_secret(obj)
        if rt.custom:
            sch = rt.schema(ctx.version) or {}
            pruned = S.prune(obj, sch)
            S.drop_nulls(obj, sch)
            S.apply_defaults(obj, sch)
            if pruned:
                mode = ctx.field_validation
                if mode == "Strict":
                    detail = ", ".join(f'unknown field "{p}"' for p in pruned)
                    if patch_text is not None:
                        raise E.invalid_error(rt.kind, rt.group, ctx.name, [E.invalid("patch", patch_text, f"strict decoding error: {detail}")])
                    raise E.bad_request(f'{rt.kind} in version "{ctx.version}" cannot be handled as a {rt.kind}: '
                                        f"strict decoding error: {detail}")
                if mode != "Ignore":
                    ctx.warnings.extend(f'unknown field "{p}"' for p in pruned)
        stored = rt.from_view(obj) if rt.from_view else obj
        stored["apiVersion"] = rt.api_version(rt.storage_version) if rt.custom else rt.api_version(ctx.version)
        stored["kind"] = rt.kind
        if rt.storage_key != (rt.group, rt.plural):
            stored["apiVersion"] = "v1"
        return stored

    # ================================================================== namespace checks

    def _check_namespace(self, ctx: Ctx, obj: dict[str, Any]) -> None:
        rt = ctx.rt
        meta = obj["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        body_ns = meta.get("namespace") or ""
        if body_ns and body_ns != ctx.namespace:
            raise E.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = ctx.namespace

    def _namespace_state(self, ns: str) -> dict[str, Any] | None:
        return self.store.get((("", "namespaces"), "", ns))

    def _require_namespace(self, ctx: Ctx, name: str, creating: bool) -> None:
        if not ctx.rt.namespaced:
            return
        nsobj = self._namespace_state(ctx.namespace)
        if nsobj is None:
            raise E.not_found("namespaces", "", ctx.namespace)
        if creating and dig(nsobj, "metadata", "deletionTimestamp"):
            raise E.ApiError(
                403,
                f'{ctx.rt.qualified} "{name}" is forbidden: unable to create new content in namespace {ctx.namespace} '
                "because it is being terminated",
                "Forbidden",
                {"name": name, "group": ctx.rt.group, "kind": ctx.rt.plural,
                 "causes": [{"reason": "NamespaceTerminating", "message": f"namespace {ctx.namespace} is being terminated",
                             "field": "metadata.namespace"}]},
            )

    # ================================================================== GET / LIST

    def _get(self, ctx: Ctx) -> Response:
        with self.store.lock:
            if ctx.sub == "status" or not ctx.sub:
                obj = self.store.get(self.key(ctx.rt, ctx.namespace, ctx.name))
                if obj is None:
                    raise E.not_found(ctx.rt.plural, ctx.rt.group, ctx.name)
                return Response(200, self.view(ctx.rt, ctx.version, obj))
        raise E.ApiError(404, "the server could not find the requested resource", "NotFound", {})

    def _matcher(self, ctx: Ctx) -> Callable[[dict[str, Any]], bool]:
        rt = ctx.rt
        labels = parse_label_selector(ctx.query.get("labelSelector"))
        fields = parse_field_selector(ctx.query.get("fieldSelector"), rt.supports_field)

        def match(stored: dict[str, Any]) -> bool:
            if rt.namespaced and ctx.namespace and dig(stored, "metadata", "namespace") != ctx.namespace:
                return False
            return labels(dig(stored, "metadata", "labels", default={}) or {}) and fields(rt.field_set(stored))

        return match

    def _list(self, ctx: Ctx) -> Response:
        rt = ctx.rt
        match = self._matcher(ctx)
        limit = int(ctx.query.get("limit") or 0)
        cont = ctx.query.get("continue") or ""
        requested = ctx.query.get("resourceVersion") or ""
        self._wait_for_rv(requested)
        with self.store.lock:
            list_rv = self.store.rv
            start_after: tuple[str, str] | None = None
            if cont:
                try:
                    token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    list_rv, start_after = int(token["rv"]), (token["ns"], token["name"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise E.bad_request(f"invalid continue token: {exc}") from exc
                if list_rv < self.store.compacted_rv:
                    raise E.expired("The provided continue parameter is too old to display a consistent list result. "
                                    "You can start a new list without the continue parameter, or use the continue token "
                                    "in this response to retrieve the remainder of the results.")
            items = []
            next_token = ""
            for key, obj in self.store.items(rt.storage_key):
                if start_after is not None and (key[1], key[2]) <= start_after:
                    continue
                if not match(obj):
                    continue
                if limit and len(items) >= limit:
                    last = items[-1][0]
                    next_token = base64.urlsafe_b64encode(json.dumps({"rv": list_rv, "ns": last[1], "name": last[2]}).encode()).decode()
                    break
                items.append((key, obj))
            out_items = [self.view(rt, ctx.version, o, with_type=rt.custom) for _, o in items]
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if rt.custom or next_token:
            meta["continue"] = next_token
        if next_token:
            meta["remainingItemCount"] = sum(1 for k, o in self.store.items(rt.storage_key) if match(o) and (k[1], k[2]) > (items[-1][0][1], items[-1][0][2]))
        return Response(200, {"apiVersion": rt.api_version(ctx.version), "kind": rt.list_kind, "metadata": meta, "items": out_items})

    def _wait_for_rv(self, requested: str) -> None:
        if not requested or requested == "0":
            return
        try:
            want = int(requested)
        except ValueError as exc:
            raise E.internal(f"strconv.ParseUint: parsing {requested!r}: invalid syntax") from exc
        deadline = time.monotonic() + self.too_large_rv_wait
        with self.store.cond:
            while self.store.rv < want:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise E.too_large_rv(want, self.store.rv)
                self.store.cond.wait(left)

    # ================================================================== WATCH

    def _watch(self, ctx: Ctx) -> Response:
        match = self._matcher(ctx)  # selector errors are answered before the stream starts
        rv_param = ctx.query.get("resourceVersion") or ""
        if rv_param and rv_param != "0":
            try:
                int(rv_param)
            except ValueError as exc:
                raise E.internal(f"strconv.ParseUint: parsing {rv_param!r}: invalid syntax") from exc
        timeout = ctx.query.get("timeoutSeconds")
        seconds = float(timeout) if timeout else self.default_watch_timeout * (1 + self._rng.random())
        stream = WatchStream(self, ctx, match, rv_param, seconds, _truthy(ctx.query.get("allowWatchBookmarks")))
        return Response(200, None, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")], stream)

    # ================================================================== CREATE

    def _create(self, ctx: Ctx, body: bytes) -> Response:
        self._check_write_options(ctx, patch_type=None)
        obj = self._decode_object(ctx, self._decode_json(body))
        with self.store.lock:
            stored = self._create_locked(ctx, obj, via_update=False)
        return self._respond(ctx, 201, stored)

    def _generate_name(self, ctx: Ctx, prefix: str) -> str:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        for _ in range(100):
            name = prefix[:58] + "".join(self._rng.choice(alphabet) for _ in range(5))
            if self.store.get(self.key(ctx.rt, ctx.namespace, name)) is None:
                return name
        raise E.internal("failed to generate a unique name")

    def _stamp_new(self, obj: dict[str, Any], rt: ResourceType) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_time()
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "resourceVersion"):
            meta.pop(k, None)
        if rt.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)

    def _create_locked(self, ctx: Ctx, obj: dict[str, Any], via_update: bool) -> dict[str, Any]:
        rt = ctx.rt
        self._check_namespace(ctx, obj)
        meta = obj["metadata"]
        rv = meta.get("resourceVersion")
        if rv and not via_update:
            try:
                nonzero = int(rv) != 0
            except ValueError:
                nonzero = False  # a non-numeric RV slips through on create (kubernetes#113847)
            if nonzero:
                raise E.internal("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(ctx, meta["generateName"])
        name = meta.get("name") or ""
        if name:
            self._require_namespace(ctx, name, creating=True)
        elif rt.namespaced and self._namespace_state(ctx.namespace) is None:
            raise E.not_found("namespaces", "", ctx.namespace)
        if rt.has_subresource(ctx.version, "status"):
            obj.pop("status", None)
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            self._fill_crd_status(obj)
        self._stamp_new(obj, rt)
        if rt.defaulter:
            rt.defaulter(obj, None)
        errs = self._validate(ctx, obj, None, "")
        if errs:
            raise E.invalid_error(rt.kind, rt.group, name, errs)
        key = self.key(rt, ctx.namespace, name)
        existing = self.store.get(key)
        if existing is not None:
            raise E.already_exists(rt.plural, rt.group, name, bool(dig(existing, "metadata", "deletionTimestamp")))
        self._record_ownership(key, ctx, None, obj, "Apply" if ctx.headers.get("content-type", "").startswith(APPLY_PATCH) else "Update")
        if ctx.dry_run:
            return obj
        stored = self.store.put(key, obj, "ADDED")
        self._after_write(rt, stored)
        return stored

    # ================================================================== validation

    def _validate(self, ctx: Ctx, obj: dict[str, Any], old: dict[str, Any] | None, sub: str) -> list[E.FieldError]:
        rt = ctx.rt
        errs = validate_metadata(rt, obj, old)
        if rt.custom:
            sch = rt.schema(ctx.version)
            if sch is not None:
                errs.extend(S.validate_object(obj, sch, old, only="status" if sub == "status" else None))
        elif rt.validator:
            view = rt.to_view(obj) if rt.to_view else obj
            old_view = (rt.to_view(old) if rt.to_view else old) if old is not None else None
            errs.extend(rt.validator(view, old_view))
        for hook in self.admission_hooks:
            errs.extend(hook("CREATE" if old is None else "UPDATE", rt, obj, old) or [])
        return errs

    # ================================================================== UPDATE

    def _check_write_options(self, ctx: Ctx, patch_type: str | None) -> None:
        fv = ctx.query.get("fieldValidation")
        if fv and fv not in ("Ignore", "Warn", "Strict"):
            raise E.invalid_error("PatchOptions.meta.k8s.io" if patch_type else "CreateOptions.meta.k8s.io", "", "",
                                  [E.not_supported("fieldValidation", fv, ["Ignore", "Warn", "Strict"])])
        dr = ctx.query.get("dryRun")
        if dr and dr != "All":
            raise E.invalid_error("PatchOptions.meta.k8s.io", "", "", [E.not_supported("dryRun", dr, ["All"])])
        if patch_type is not None:
            if "force" in ctx.query and not patch_type.startswith("application/apply-patch"):
                raise E.invalid_error("PatchOptions.meta.k8s.io", "", "", [E.forbidden("force", "may not be specified for non-apply patch")])
            if patch_type.startswith("application/apply-patch") and not ctx.query.get("fieldManager"):
                raise E.invalid_error("PatchOptions.meta.k8s.io", "", "", [E.required("fieldManager", "is required for apply patch")])

    def _update(self, ctx: Ctx, body: bytes) -> Response:
        self._check_write_options(ctx, patch_type=None)
        raw = self._decode_json(body)
        if isinstance(raw, dict):
            body_name = dig(raw, "metadata", "name", default="")
            if body_name != ctx.name:
                raise E.bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({ctx.name})")
        obj = self._decode_object(ctx, raw)
        self._check_namespace(ctx, obj)
        with self.store.lock:
            old = self.store.get(self.key(ctx.rt, ctx.namespace, ctx.name))
            if old is None:
                if ctx.rt.allow_create_on_update and not ctx.sub:
                    return self._respond(ctx, 201, self._create_locked(ctx, obj, via_update=True))
                raise E.not_found(ctx.rt.plural, ctx.rt.group, ctx.name)
            code, stored = self._update_locked(ctx, old, obj, "Update")
        return self._respond(ctx, code, stored)

    def _check_preconditions(self, ctx: Ctx, old: dict[str, Any], obj: dict[str, Any], allow_unconditional: bool) -> None:
        rt = ctx.rt
        meta = obj["metadata"]
        old_meta = old["metadata"]
        uid = meta.get("uid")
        if uid and uid != old_meta.get("uid"):
            raise E.conflict(rt.plural, rt.group, ctx.name,
                             f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old_meta.get('uid')}")
        rv = meta.get("resourceVersion") or ""
        if not rv:
            if not allow_unconditional:
                raise E.invalid_error(rt.plural, rt.group, ctx.name,
                                      [E.invalid("metadata.resourceVersion", 0, "must be specified for an update")])
            return
        try:
            rv_int = int(rv)
        except ValueError as exc:
            raise E.invalid_error(rt.kind, rt.group, ctx.name,
                                  [E.invalid("metadata.resourceVersion", rv, "must be a valid resource version")]) from exc
        if rv_int != int(old_meta["resourceVersion"]):
            raise E.conflict(rt.plural, rt.group, ctx.name)

    def _update_locked(self, ctx: Ctx, old: dict[str, Any], obj: dict[str, Any], operation: str) -> tuple[int, dict[str, Any]]:
        rt = ctx.rt
        sub = ctx.sub
        allow_unconditional = rt.allow_unconditional_update
        self._check_preconditions(ctx, old, obj, allow_unconditional)
        old_meta = old["metadata"]
        if sub == "status" and rt.status_strategy == "all-but-status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            if sub == "status":
                for f in ("spec",):
                    if f in old:
                        new[f] = copy.deepcopy(old[f])
                    else:
                        new.pop(f, None)
                if rt.status_strategy == "spec+labels":
                    new["metadata"]["labels"] = copy.deepcopy(old_meta.get("labels"))
                    if new["metadata"]["labels"] is None:
                        new["metadata"].pop("labels")
            elif sub == "finalize":
                new = copy.deepcopy(old)
                new["spec"] = copy.deepcopy(obj.get("spec") or {})
            elif rt.has_subresource(ctx.version, "status"):
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        meta = new["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp"):
            if old_meta.get(k):
                meta[k] = old_meta[k]
        if old_meta.get("deletionGracePeriodSeconds") is not None and meta.get("deletionGracePeriodSeconds") is None:
            meta["deletionGracePeriodSeconds"] = old_meta["deletionGracePeriodSeconds"]
        meta.pop("selfLink", None)
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"]
        else:
            meta.pop("generation", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if rt.defaulter:
            rt.defaulter(new, old)
        if sub not in ("status",) and rt.generation and "generation" in old_meta:
            if self._generation_changed(rt, old, new):
                meta["generation"] = old_meta["generation"] + 1
        errs = self._validate(ctx, new, old, sub)
        if errs:
            raise E.invalid_error(rt.kind, rt.group, ctx.name, errs)
        key = self.key(rt, ctx.namespace, ctx.name)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            meta.pop("finalizers", None)
            if ctx.dry_run:
                return 200, new
            gone = self.store.remove(key)  # the DELETED event carries the last stored state
            self.owners.pop(key, None)
            self._after_delete(rt, gone)
            return 200, new
        if self._same(old, new):
            return 200, old
        self._record_ownership(key, ctx, old, new, operation)
        if ctx.dry_run:
            return 200, new
        stored = self.store.put(key, new, "MODIFIED")
        self._after_write(rt, stored)
        return 200, stored

    @staticmethod
    def _strip(obj: dict[str, Any]) -> dict[str, Any]:
        o = dict(obj)
        m = dict(o.get("metadata") or {})
        m.pop("managedFields", None)
        m.pop("resourceVersion", None)
        o["metadata"] = m
        return o

    def _same(self, old: dict[str, Any], new: dict[str, Any]) -> bool:
        return json_equal(self._strip(old), self._strip(new))

    @staticmethod
    def _generation_changed(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
        if rt.generation == "crd":
            a = {k: v for k, v in old.items() if k not in ("metadata", "apiVersion", "kind")}
            b = {k: v for k, v in new.items() if k not in ("metadata", "apiVersion", "kind")}
            return not json_equal(a, b)
        changed = not json_equal(old.get("spec"), new.get("spec"))
        if rt.generation == "spec+annotations":
            changed = changed or not json_equal(dig(old, "metadata", "annotations"), dig(new, "metadata", "annotations"))
        return changed

    # ================================================================== PATCH

    def _accepted_patch_types(self, rt: ResourceType) -> list[str]:
        if rt.strategic_merge:
            return [JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH]
        return [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]

    def _patch(self, ctx: Ctx, body: bytes) -> Response:
        rt = ctx.rt
        ctype = ctx.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        accepted = self._accepted_patch_types(rt)
        if ctype not in accepted:
            raise E.unsupported_media_type(accepted)
        self._check_write_options(ctx, patch_type=ctype)
        text = body.decode("utf-8", errors="replace")
        if ctype == APPLY_PATCH:
            return self._apply(ctx, text)
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise E.bad_request(f"error decoding patch: {exc}") from exc
        if ctype == JSON_PATCH:
            if not isinstance(patch, list):
                raise E.bad_request(f"json: cannot unmarshal {S.json_type(patch)} into Go value of type jsonpatch.Patch")
            if len(patch) > 10_000:
                raise E.ApiError(413, "The request operation has too many operations: maximum is 10000", "RequestEntityTooLarge")
        with self.store.lock:
            old = self.store.get(self.key(rt, ctx.namespace, ctx.name))
            if old is None:
                raise E.not_found(rt.plural, rt.group, ctx.name)
            current = self.view(rt, ctx.version, old)
            try:
                if ctype == JSON_PATCH:
                    patched = json_patch(current, patch)
                elif ctype == MERGE_PATCH:
                    patched = merge_patch(current, patch)
                else:
                    if not isinstance(patch, dict):
                        raise E.bad_request("unable to decode strategic merge patch: not an object")
                    patched = strategic_merge_patch(current, patch)
            except PatchError as exc:
                raise E.json_patch_failed() from exc
            if not isinstance(patched, dict):
                raise E.invalid_error(rt.kind, rt.group, ctx.name, [E.invalid("patch", text, "couldn't decode the patched object")])
            self._check_patched_identity(ctx, patched)
            obj = self._decode_object(ctx, patched, patch_text=text)
            self._check_namespace(ctx, obj)
            code, stored = self._update_locked(ctx, old, obj, "Update")
        return self._respond(ctx, code, stored)

    def _check_patched_identity(self, ctx: Ctx, patched: dict[str, Any]) -> None:
        name = dig(patched, "metadata", "name", default="")
        if name != ctx.name:
            raise E.bad_request(f"the name of the object ({name}) does not match the name on the URL ({ctx.name})")
        ns = dig(patched, "metadata", "namespace", default="")
        if ctx.rt.namespaced and ns and ns != ctx.namespace:
            raise E.bad_request("the namespace of the provided object does not match the namespace sent on the request")

    # ================================================================== server-side apply (approximation, 3.4)

    def _apply(self, ctx: Ctx, text: str) -> Response:
        rt = ctx.rt
        try:
            applied = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise E.bad_request(f"error decoding YAML: {exc}") from exc
        if not isinstance(applied, dict):
            raise E.bad_request("error decoding YAML: the body is not an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise E.bad_request("invalid object type: /, Kind=")
        if dig(applied, "metadata", "managedFields"):
            raise E.bad_request("metadata.managedFields must be nil")
        self._check_patched_identity(ctx, {"metadata": {"name": dig(applied, "metadata", "name", default=""),
                                                        "namespace": dig(applied, "metadata", "namespace", default="")}})
        manager = ctx.query["fieldManager"]
        force = _truthy(ctx.query.get("force"))
        with self.store.lock:
            key = self.key(rt, ctx.namespace, ctx.name)
            old = self.store.get(key)
            if old is None:
                if ctx.sub:
                    raise E.not_found(rt.plural, rt.group, ctx.name)
                obj = self._decode_object(ctx, applied)
                stored = self._create_locked(ctx, obj, via_update=False)
                self.owners.setdefault(key, {})[(manager, "Apply")] = _leaf_paths(_applied_content(applied))
                return self._respond(ctx, 201, stored)
            current = self.view(rt, ctx.version, old)
            paths = _leaf_paths(_applied_content(applied))
            owners = self.owners.setdefault(key, {})
            conflicts = []
            for (mgr, _op), owned in owners.items():
                if mgr == manager:
                    continue
                for p in sorted(paths):
                    if any(p[: len(o)] == o or o[: len(p)] == p for o in owned):
                        if not json_equal(_get_path(current, p), _get_path(applied, p)):
                            conflicts.append((mgr, p))
            if conflicts and not force:
                causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {rt.api_version(ctx.version)}',
                           "field": "." + ".".join(p)} for m, p in conflicts]
                if len(conflicts) == 1:
                    m, p = conflicts[0]
                    msg = f'Apply failed with 1 conflict: conflict with "{m}" using {rt.api_version(ctx.version)}: .{".".join(p)}'
                else:
                    lines = "\n".join(f"- .{'.'.join(p)}" for _, p in conflicts)
                    msg = f'Apply failed with {len(conflicts)} conflicts: conflicts with "{conflicts[0][0]}" using {rt.api_version(ctx.version)}:\n{lines}'
                raise E.ApiError(409, msg, "Conflict", {"causes": causes})
            snapshot = {k: set(v) for k, v in owners.items()}
            previously = owners.get((manager, "Apply"), set())
            merged = copy.deepcopy(current)
            # fields this manager applied before and no longer applies are removed unless someone else owns them
            for p in previously - paths:
                if not any(p in owned for (m, _), owned in owners.items() if m != manager):
                    _del_path(merged, p)
            merged = _apply_merge(merged, applied, rt.strategic_merge)
            if not dig(applied, "metadata", "resourceVersion"):
                merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if force:
                for (m, _), owned in owners.items():
                    if m != manager:
                        owned -= {o for o in owned if any(o[: len(p)] == p or p[: len(o)] == o for p in paths)}
            owners[(manager, "Apply")] = paths
            try:
                obj = self._decode_object(ctx, merged)
                self._check_namespace(ctx, obj)
                code, stored = self._update_locked(ctx, old, obj, "Apply")
            except E.ApiError:
                self.owners[key] = snapshot
                raise
            if ctx.dry_run:
                self.owners[key] = snapshot
        return self._respond(ctx, code, stored)

    def _record_ownership(self, key: Key, ctx: Ctx, old: dict[str, Any] | None, new: dict[str, Any], operation: str) -> None:
        if ctx.dry_run:
            return
        owners = self.owners.setdefault(key, {})
        manager = ctx.manager
        changed = _changed_paths(_applied_content(self._strip(old)) if old else {}, _applied_content(self._strip(new)))
        if operation != "Apply" and changed:
            for (m, op), owned in owners.items():
                if (m, op) != (manager, operation):
                    owned -= {o for o in owned if any(o[: len(p)] == p or p[: len(o)] == o for p in changed)}
            owners.setdefault((manager, operation), set()).update(changed)
        elif operation == "Apply" and old is None:
            owners.setdefault((manager, operation), set()).update(changed)
        new["metadata"]["managedFields"] = self._managed_fields(key, ctx.rt, ctx.version)

    def _managed_fields(self, key: Key, rt: ResourceType, version: str) -> list[dict[str, Any]]:
        out = []
        t = now_time()
        for (mgr, op), owned in sorted(self.owners.get(key, {}).items()):
            if not owned:
                continue
            tree: dict[str, Any] = {}
            for p in sorted(owned):
                node = tree
                for part in p:
                    node = node.setdefault(f"f:{part}", {})
            out.append({"manager": mgr, "operation": op, "apiVersion": rt.api_version(version), "time": t,
                        "fieldsType": "FieldsV1", "fieldsV1": tree})
        return out

    # ================================================================== SCALE

    def _scale(self, ctx: Ctx, method: str, body: bytes) -> Response:
        rt = ctx.rt
        spec = rt.scale_spec(ctx.version) or {}
        spec_path = spec.get("specReplicasPath", ".spec.replicas").lstrip(".").split(".")
        status_path = spec.get("statusReplicasPath", ".status.replicas").lstrip(".").split(".")
        sel_path = (spec.get("labelSelectorPath") or "").lstrip(".").split(".") if spec.get("labelSelectorPath") else None

        def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
            meta = obj["metadata"]
            selector = ""
            if rt.plural == "deployments":
                selector = label_selector_from_match(dig(obj, "spec", "selector"))
            elif sel_path:
                selector = dig(obj, *sel_path, default="") or ""
            status: dict[str, Any] = {"replicas": dig(obj, *status_path, default=0) or 0}
            if selector:
                status["selector"] = selector
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
                    "spec": {"replicas": dig(obj, *spec_path, default=0) or 0}, "status": status}

        with self.store.lock:
            key = self.key(rt, ctx.namespace, ctx.name)
            old = self.store.get(key)
            if old is None:
                raise E.not_found(rt.plural, rt.group, ctx.name)
            if method == "GET":
                return Response(200, to_scale(old))
            current = to_scale(old)
            if method == "PUT":
                new_scale = self._decode_json(body)
            else:
                ctype = ctx.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                accepted = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_PATCH] if rt.strategic_merge else [])
                if ctype not in accepted:
                    raise E.unsupported_media_type(accepted + [APPLY_PATCH])
                patch = self._decode_json(body)
                try:
                    if ctype == JSON_PATCH:
                        new_scale = json_patch(current, patch)
                    elif ctype == MERGE_PATCH:
                        new_scale = merge_patch(current, patch)
                    else:
                        new_scale = strategic_merge_patch(current, patch)
                except PatchError as exc:
                    raise E.json_patch_failed() from exc
            if not isinstance(new_scale, dict):
                raise E.bad_request("the object provided is unrecognized (must be of type Scale)")
            replicas = dig(new_scale, "spec", "replicas", default=0)
            if not isinstance(replicas, int) or replicas < 0:
                raise E.invalid_error("Scale", "autoscaling", ctx.name, [E.invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
            obj = copy.deepcopy(old)
            obj["metadata"]["resourceVersion"] = dig(new_scale, "metadata", "resourceVersion", default="") or ""
            if dig(new_scale, "metadata", "uid"):
                obj["metadata"]["uid"] = new_scale["metadata"]["uid"]
            node = obj
            for p in spec_path[:-1]:
                node = node.setdefault(p, {})
            node[spec_path[-1]] = replicas
            main_ctx = Ctx(rt, ctx.version, ctx.namespace, ctx.name, "", ctx.query, ctx.headers)
            _, stored = self._update_locked(main_ctx, old, obj, "Update")
            return Response(200, to_scale(stored))

    # ================================================================== DELETE

    def _delete_options(self, ctx: Ctx, body: bytes) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if body and body.strip():
            raw = self._decode_json(body)
            if isinstance(raw, dict):
                opts = raw
        for k in ("propagationPolicy", "gracePeriodSeconds", "dryRun"):
            if k in ctx.query:
                opts[k] = ctx.query[k]
        return opts

    def _delete(self, ctx: Ctx, body: bytes) -> Response:
        opts = self._delete_options(ctx, body)
        if opts.get("dryRun") in ("All", ["All"]):
            ctx.query["dryRun"] = "All"
        with self.store.lock:
            result = self._delete_locked(ctx.rt, ctx.namespace, ctx.name, opts, dry_run=ctx.dry_run)
        if isinstance(result, tuple):
            return Response(200, self.view(ctx.rt, ctx.version, result[1]))
        gone = result
        if ctx.rt.group == "" and ctx.rt.plural in ("pods", "services", "namespaces"):
            return Response(200, self.view(ctx.rt, ctx.version, gone))
        return Response(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                              "details": {"name": ctx.name, "group": ctx.rt.group, "kind": ctx.rt.plural,
                                          "uid": dig(gone, "metadata", "uid")}})

    def _delete_locked(self, rt: ResourceType, namespace: str, name: str, opts: dict[str, Any], dry_run: bool = False) -> Any:
        """Returns the removed object, or ``("pending", obj)`` when finalizers keep it."""
        key = self.key(rt, namespace, name)
        old = self.store.get(key)
        if old is None:
            raise E.not_found(rt.plural, rt.group, name)
        pre = opts.get("preconditions") or {}
        meta = old["metadata"]
        qual = E.qualified(rt.kind, rt.group)
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise E.ApiError(409, f'Operation cannot be fulfilled on {qual} "{name}": the UID in the precondition ({pre["uid"]}) does '
                             f'not match the UID in record ({meta.get("uid")}). The object might have been deleted and then recreated',
                             "Conflict", {"name": name, "group": rt.group, "kind": rt.kind})
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise E.ApiError(409, f'Operation cannot be fulfilled on {qual} "{name}": the ResourceVersion in the precondition '
                             f'({pre["resourceVersion"]}) does not match the ResourceVersion in record ({meta.get("resourceVersion")}). '
                             "The object might have been modified", "Conflict", {"name": name, "group": rt.group, "kind": rt.kind})
        if rt.plural == "namespaces":
            return self._delete_namespace(old, dry_run)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return ("pending", old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_time()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if new["metadata"].get("generation", 0) > 0:
                new["metadata"]["generation"] += 1
            if dry_run:
                return ("pending", new)
            return ("pending", self.store.put(key, new, "MODIFIED"))
        if dry_run:
            return old
        gone = self.store.remove(key)
        self.owners.pop(key, None)
        self._after_delete(rt, gone, orphan=opts.get("propagationPolicy") == "Orphan")
        return gone

    def _delete_namespace(self, ns_obj: dict[str, Any], dry_run: bool) -> Any:
        key = (("", "namespaces"), "", ns_obj["metadata"]["name"])
        if dry_run:
            return ("pending", ns_obj)
        if not dig(ns_obj, "metadata", "deletionTimestamp"):
            new = copy.deepcopy(ns_obj)
            new["metadata"]["deletionTimestamp"] = now_time()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            ns_obj = self.store.put(key, new, "MODIFIED")
        self._namespace_controller(ns_obj["metadata"]["name"])
        current = self.store.get(key)
        return ("pending", current) if current is not None else ns_obj

    def _namespace_controller(self, ns: str) -> None:
        """What kube-controller-manager's namespace controller does: delete the content of a
        terminating namespace, then the namespace once nothing (with finalizers) is left."""
        key = (("", "namespaces"), "", ns)
        nsobj = self.store.get(key)
        if nsobj is None or not dig(nsobj, "metadata", "deletionTimestamp") or ns in self._ns_cleanup:
            return
        self._ns_cleanup.add(ns)
        try:
            self._clean_namespace(key, ns, nsobj)
        finally:
            self._ns_cleanup.discard(ns)

    def _clean_namespace(self, key: Key, ns: str, nsobj: dict[str, Any]) -> None:
        remaining = False
        for k in list(self.store.objects):
            if k[1] != ns or k[0] == ("", "namespaces"):
                continue
            rt = next((t for t in self.resource_types() if t.storage_key == k[0]), None)
            if rt is None or not rt.namespaced:
                continue
            res = self._delete_locked(rt, ns, k[2], {})
            if isinstance(res, tuple):
                remaining = True
        if not remaining and not dig(nsobj, "metadata", "finalizers") and self.store.get(key) is not None:
            self.store.remove(key)
            self.owners.pop(key, None)

    def _delete_collection(self, ctx: Ctx, body: bytes) -> Response:
        opts = self._delete_options(ctx, body)
        match = self._matcher(ctx)
        with self.store.lock:
            for key, obj in self.store.items(ctx.rt.storage_key):
                if match(obj):
                    self._delete_locked(ctx.rt, key[1], key[2], opts, dry_run=ctx.dry_run)
            rv = self.store.rv
        return Response(200, {"apiVersion": ctx.rt.api_version(ctx.version), "kind": ctx.rt.list_kind,
                              "metadata": {"resourceVersion": str(rv)}, "items": []} if ctx.rt.custom else
                        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    # ================================================================== side effects

    def _after_write(self, rt: ResourceType, stored: dict[str, Any]) -> None:
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            crd = copy.deepcopy(stored)
            try:
                new_rt = crd_resource_type(crd)
            except (KeyError, TypeError, IndexError):
                return
            for k in [k for k, t in self.types.items() if t.storage_key == new_rt.storage_key]:
                del self.types[k]
            self._register(new_rt)

    def _after_delete(self, rt: ResourceType, gone: dict[str, Any], orphan: bool = False) -> None:
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            spec = gone.get("spec") or {}
            self.unregister_crd(spec.get("group", ""), dig(spec, "names", "plural", default=""))
            return
        ns = dig(gone, "metadata", "namespace", default="")
        if ns:
            nsobj = self._namespace_state(ns)
            if nsobj is not None and dig(nsobj, "metadata", "deletionTimestamp"):
                self._namespace_controller(ns)
        if self.garbage_collection and not orphan:
            self._collect_garbage(dig(gone, "metadata", "uid"))

    def _collect_garbage(self, owner_uid: str | None) -> None:
        """A synchronous stand-in for the garbage collector (background propagation)."""
        if not owner_uid:
            return
        live_uids = {dig(o, "metadata", "uid") for o in self.store.objects.values()}
        for key, obj in list(self.store.objects.items()):
            refs = dig(obj, "metadata", "ownerReferences", default=[]) or []
            if not any(r.get("uid") == owner_uid for r in refs):
                continue
            rt = next((t for t in self.resource_types() if t.storage_key == key[0]), None)
            if rt is None or self.store.get(key) is None:
                continue
            if all(r.get("uid") not in live_uids for r in refs):
                self._delete_locked(rt, key[1], key[2], {})
            else:
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                self.store.put(key, new, "MODIFIED")

    # ================================================================== response

    def _respond(self, ctx: Ctx, code: int, stored: dict[str, Any]) -> Response:
        headers = [("Warning", '299 - "' + w.replace('"', '\\"') + '"') for w in ctx.warnings]
        return Response(code, self.view(ctx.rt, ctx.version, stored), headers)


# ====================================================================== SSA helpers


def _applied_content(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    meta = obj.get("metadata") or {}
    m = {k: meta[k] for k in ("labels", "annotations", "finalizers", "ownerReferences") if k in meta}
    if m:
        out["metadata"] = m
    return out


def _leaf_paths(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(obj, dict) and obj:
        out: set[tuple[str, ...]] = set()
        for k, v in obj.items():
            out |= _leaf_paths(v, prefix + (k,))
        return out
    return {prefix} if prefix else set()


def _changed_paths(old: Any, new: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: set[tuple[str, ...]] = set()
        for k in set(old) | set(new):
            if k not in new:
                continue
            out |= _changed_paths(old.get(k), new[k], prefix + (k,))
        return out
    if json_equal(old, new):
        return set()
    if isinstance(new, dict):
        return _leaf_paths(new, prefix) or {prefix}
    return {prefix} if prefix else set()


def _get_path(obj: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _del_path(obj: Any, path: tuple[str, ...]) -> None:
    for p in path[:-1]:
        if not isinstance(obj, dict):
            return
        obj = obj.get(p)
    if isinstance(obj, dict):
        obj.pop(path[-1], None)


def _apply_merge(current: Any, applied: Any, strategic: bool) -> Any:
    """Merge an applied configuration: maps merge, lists are atomic (CRs) or keyed (built-ins)."""
    if strategic:
        return strategic_merge_patch(current, applied)
    if isinstance(current, dict) and isinstance(applied, dict):
        out = dict(current)
        for k, v in applied.items():
            out[k] = _apply_merge(current.get(k), v, strategic) if v is not None else None
            if out[k] is None:
                out.pop(k)
        return out
    return copy.deepcopy(applied)


# ====================================================================== WATCH stream


class WatchStream:
    """Produces watch event lines (already JSON-encoded) for one watch request."""

    def __init__(self, api: ApiServer, ctx: Ctx, match: Callable[[dict[str, Any]], bool], rv_param: str,
                 timeout: float, bookmarks: bool):
        self.api = api
        self.ctx = ctx
        self.match = match
        self.rv_param = rv_param
        self.deadline = time.monotonic() + timeout
        self.bookmarks = bookmarks
        self.closed = threading.Event()
        self.client_alive: Callable[[], bool] = lambda: True  # set by the HTTP layer

    def _event(self, typ: str, stored: dict[str, Any]) -> bytes:
        obj = self.api.view(self.ctx.rt, self.ctx.version, stored)
        return (json.dumps({"type": typ, "object": obj}, separators=(",", ":")) + "\n").encode()

    @staticmethod
    def _error(status: dict[str, Any]) -> bytes:
        return (json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")) + "\n").encode()

    def _bookmark(self, rv: int) -> bytes:
        rt = self.ctx.rt
        obj = {"kind": rt.kind, "apiVersion": rt.api_version(self.ctx.version), "metadata": {"resourceVersion": str(rv)}}
        return (json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")) + "\n").encode()

    def _translate(self, ev: StoreEvent) -> bytes | None:
        if ev.key[0] != self.ctx.rt.storage_key:
            return None
        now_match = self.match(ev.obj)
        if ev.type == "ADDED":
            return self._event("ADDED", ev.obj) if now_match else None
        if ev.type == "DELETED":
            return self._event("DELETED", ev.obj) if now_match else None
        was_match = ev.prev is not None and self.match(ev.prev)
        if now_match and was_match:
            return self._event("MODIFIED", ev.obj)
        if now_match:
            return self._event("ADDED", ev.obj)
        if was_match and ev.prev is not None:
            gone = copy.deepcopy(ev.prev)
            gone["metadata"]["resourceVersion"] = str(ev.rv)
            return self._event("DELETED", gone)
        return None

    def lines(self) -> Iterator[bytes]:
        store = self.api.store
        epoch = store.close_watches_epoch
        with store.cond:
            if self.rv_param in ("", "0"):
                cursor = store.rv
                initial = [o for _, o in store.items(self.ctx.rt.storage_key) if self.match(o)]
            else:
                want = int(self.rv_param)
                initial = []
                cursor = want
                if want < store.compacted_rv:
                    yield self._error(E.status_body(410, f"too old resource version: {want} ({store.compacted_rv})", "Expired"))
                    return
                wait_until = time.monotonic() + self.api.too_large_rv_wait
                while store.rv < want and time.monotonic() < wait_until and not store.closing:
                    store.cond.wait(max(0.0, wait_until - time.monotonic()))
                if store.rv < want:
                    yield self._error(E.too_large_rv(want, store.rv).status)
                    return
            init_lines = [self._event("ADDED", o) for o in initial]
        yield from init_lines
        next_bookmark = time.monotonic() + self.api.bookmark_interval
        bookmark_epoch = store.bookmark_epoch
        while True:
            pending: list[bytes] = []
            with store.cond:
                while True:
                    if store.closing or store.close_watches_epoch != epoch or self.closed.is_set() or not self.client_alive():
                        return
                    now = time.monotonic()
                    if now >= self.deadline:
                        return
                    events = store.events_after(cursor)
                    if events is None:
                        pending.append(self._error(E.status_body(410, f"too old resource version: {cursor} ({store.compacted_rv})", "Expired")))
                        break
                    if events:
                        for ev in events:
                            line = self._translate(ev)
                            if line is not None:
                                pending.append(line)
                        cursor = events[-1].rv
                        if pending:
                            break
                        continue
                    if self.bookmarks and (now >= next_bookmark or store.bookmark_epoch != bookmark_epoch):
                        bookmark_epoch = store.bookmark_epoch
                        next_bookmark = now + self.api.bookmark_interval
                        cursor = max(cursor, store.rv)
                        pending.append(self._bookmark(cursor))
                        break
                    wake = min(self.deadline, next_bookmark if self.bookmarks else self.deadline)
                    store.cond.wait(max(0.01, min(wake - now, 1.0)))
            for line in pending:
                yield line
                if line.startswith(b'{"type":"ERROR"'):
                    return
