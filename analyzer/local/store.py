"""Rollouts kept in files: a :class:`~analyzer.ports.RolloutStore` for machines without Kubernetes.

Layout of the store directory::

    DIR/.lock                        store-wide write lock (fcntl.flock), held around read-compare-write
    DIR/.resource-version            the last resourceVersion handed out (a monotonic integer)
    DIR/<namespace>/<name>.json      one rollout: the whole Kubernetes-shaped object, status included
    DIR/<namespace>/<name>.events.jsonl   its events (written by analyzer.local.events.LogEvents)

The objects have the shape the Kubernetes adapter gives (``apiVersion``, ``kind``, ``metadata``
with ``namespace``, ``name``, ``generation``, ``resourceVersion``, ``creationTimestamp``, ``spec``,
``status``), so everything above the port (reconcile, CLI verbs, Slack, report) is the same code.

Why it is safe with several processes (the daemon, a CLI verb, the Slack server) and crashes:

* every write holds the store lock while it reads the current object, compares, and writes, so
  no update is lost; ``update_status`` raises :class:`WriteConflict` when the caller's
  ``resourceVersion`` is stale, exactly like a 409 from the API server;
* a file is never written in place: the new content goes to a temp file in the same directory,
  is fsynced, then ``os.replace``-d over the old one (atomic), and the directory is fsynced. A
  crash before the replace leaves the old file intact plus a stray ``.<name>.json.tmp-*`` file,
  which readers ignore and the next writer (holding the lock, so no write is in flight) deletes;
* readers take no lock: a replace is atomic, so they see the old or the new file, never half;
* the resourceVersion counter is advanced (durably) before the object is written, so a crash in
  between only leaves a gap; versions never repeat.

``metadata.generation`` moves with spec changes only (``apply`` with a different spec,
``patch_spec``), as with a CRD's status subresource; ``update_status`` never touches the spec.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analyzer.argo.errors import TemplateError
from analyzer.ports import NotFound, WriteConflict
from analyzer.rollout.spec import parse_rollout

DEFAULT_NAMESPACE = "default"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_TMP_MARK = ".tmp-"


class StoreError(RuntimeError):
    """The store cannot be used as asked: a bad file (named), a bad name, a lock not obtained."""


class InvalidRollout(StoreError):
    """A manifest or a spec patch that does not make a valid rollout; the message names the field."""


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise StoreError(f"{what} {value!r} is not a valid name (lowercase letters, digits, '-' and '.', "
                         "starting and ending with a letter or digit)")
    return value


def strict(obj: Any) -> Any:
    """A JSON-safe deep copy: non-finite floats become the strings Go prints (no bare NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("+Inf" if obj > 0 else "-Inf")
    if isinstance(obj, Mapping):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict(v) for v in obj]
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    raise StoreError(f"cannot store a value of type {type(obj).__name__} ({obj!r:.60}): not JSON")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (a new value; ``target`` is not modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, ``os.replace``, fsync of the directory."""
    tmp = path.parent / f".{path.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


class LocalRolloutStore:
    """Implements :class:`~analyzer.ports.RolloutStore` on a directory (created if missing)."""

    def __init__(self, directory: str | Path, *, lock_timeout: float = 10.0) -> None:
        self.directory = Path(directory)
        self.lock_timeout = lock_timeout
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot create the store directory: {exc.strerror or exc}") from None
        if not self.directory.is_dir():
            raise StoreError(f"{self.directory}: not a directory")

    # -- paths and files -----------------------------------------------------------------------

    def path(self, namespace: str, name: str) -> Path:
        return self.directory / check_name(namespace, "namespace") / f"{check_name(name, 'rollout name')}.json"

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise StoreError(f"{path}: not UTF-8 text") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        self._check_shape(path, obj)
        return obj  # type: ignore[no-any-return]

    @staticmethod
    def _check_shape(path: Path, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise StoreError(f"{path}: expected a JSON object (a rollout), got {type(obj).__name__}")
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise StoreError(f"{path}: metadata: required mapping is missing")
        if meta.get("name") != path.name[: -len(".json")]:
            raise StoreError(f"{path}: metadata.name: {meta.get('name')!r} does not match the file name")
        if meta.get("namespace") != path.parent.name:
            raise StoreError(f"{path}: metadata.namespace: {meta.get('namespace')!r} does not match the directory")
        rv = meta.get("resourceVersion")
        if not (isinstance(rv, str) and rv.isdigit()):
            raise StoreError(f"{path}: metadata.resourceVersion: must be an integer string, got {rv!r}")
        gen = meta.get("generation")
        if isinstance(gen, bool) or not isinstance(gen, int) or gen < 1:
            raise StoreError(f"{path}: metadata.generation: must be an integer >= 1, got {gen!r}")
        for key in ("spec", "status"):
            if not isinstance(obj.get(key, {}), dict):
                raise StoreError(f"{path}: {key}: must be a mapping, got {type(obj.get(key)).__name__}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The store-wide write lock; released by the kernel if the process dies holding it."""
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                        raise StoreError(f"{self.directory}/.lock: could not lock the store within "
                                         f"{self.lock_timeout:g}s (another process holds it?)") from None
                    time.sleep(0.005)
            self._clean_temp_files()
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _clean_temp_files(self) -> None:
        """Temp files of writers that died before their replace (no write is in flight: we hold
        the lock)."""
        for tmp in self.directory.glob(f"*/.*.json{_TMP_MARK}*"):
            with contextlib.suppress(OSError):
                tmp.unlink()
        for tmp in self.directory.glob(f".*{_TMP_MARK}*"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _next_version(self) -> str:
        """Advance the counter (under the lock). A missing or damaged counter is rebuilt from the
        highest version stored, so versions never go back."""
        counter = self.directory / ".resource-version"
        try:
            last = int(counter.read_text().strip())
        except (OSError, ValueError):
            last = 0
            for path in self.directory.glob("*/*.json"):
                with contextlib.suppress(StoreError):
                    obj = self._read(path)
                    if obj is not None:
                        last = max(last, int(obj["metadata"]["resourceVersion"]))
        nxt = last + 1
        write_atomic(counter, f"{nxt}\n")
        return str(nxt)

    def _store(self, path: Path, obj: dict[str, Any]) -> dict[str, Any]:
        obj = strict(obj)
        obj["metadata"]["resourceVersion"] = self._next_version()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")
        return obj

    # -- the RolloutStore protocol ----------------------------------------------------------------

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(self.path(namespace, name))

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            paths = sorted(p for p in self.directory.glob("*/*.json") if not p.name.startswith("."))
        else:
            ns_dir = self.directory / check_name(namespace, "namespace")
            paths = sorted(p for p in ns_dir.glob("*.json") if not p.name.startswith("."))
        out = []
        for p in paths:
            obj = self._read(p)
            if obj is not None:
                out.append(obj)
        return out

    def update_status(self, namespace: str, name: str, status: Mapping[str, Any],
                      resource_version: str) -> dict[str, Any]:
        path = self.path(namespace, name)
        with self._locked():
            obj = self._read(path)
            if obj is None:
                raise NotFound(f"rollout {namespace}/{name} not found in {self.directory}")
            current = obj["metadata"]["resourceVersion"]
            if str(resource_version) != current:
                raise WriteConflict(f"rollout {namespace}/{name}: resourceVersion {resource_version} is stale "
                                    f"(stored: {current}); read it again")
            obj["status"] = copy.deepcopy(dict(status))
            return self._store(path, obj)

    def patch_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        path = self.path(namespace, name)
        with self._locked():
            obj = self._read(path)
            if obj is None:
                raise NotFound(f"rollout {namespace}/{name} not found in {self.directory}")
            spec = merge_patch(obj.get("spec") or {}, patch)
            if spec == obj.get("spec"):
                return obj  # nothing changed: no new version, as the API server does
            candidate = {**obj, "spec": spec}
            self._validate(candidate, f"spec patch of {namespace}/{name}")
            obj["spec"] = spec
            obj["metadata"]["generation"] = int(obj["metadata"]["generation"]) + 1
            return self._store(path, obj)

    # -- beyond the port: creating, replacing, deleting -------------------------------------------

    def apply(self, doc: Mapping[str, Any], *, source: str = "<manifest>") -> dict[str, Any]:
        """Create or replace a rollout from a ModelRollout (or Argo Rollout) manifest.

        The manifest is validated first (:class:`InvalidRollout` names file, field and reason).
        Its ``status`` is ignored; the stored status is kept, as with a CRD's status subresource:
        an unchanged spec writes nothing, a changed spec bumps ``generation`` and the controller
        starts the new update (the step engine sees the update hash change)."""
        if not isinstance(doc, Mapping):
            raise InvalidRollout(f"{source}: expected a mapping (a ModelRollout), got {type(doc).__name__}")
        self._validate(doc, source)
        meta = dict(doc.get("metadata") or {})
        name = check_name(str(meta.get("name")), "rollout name")
        namespace = check_name(str(meta.get("namespace") or DEFAULT_NAMESPACE), "namespace")
        path = self.path(namespace, name)
        with self._locked():
            old = self._read(path)
            spec = copy.deepcopy(dict(doc.get("spec") or {}))
            keep = {k: v for k, v in meta.items() if k in ("labels", "annotations")}
            if old is None:
                obj: dict[str, Any] = {
                    "apiVersion": doc.get("apiVersion"), "kind": doc.get("kind"),
                    "metadata": {"name": name, "namespace": namespace, "generation": 1,
                                 "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **keep},
                    "spec": spec, "status": {},
                }
                return self._store(path, obj)
            old_meta = old["metadata"]
            if spec == old.get("spec") and all(old_meta.get(k) == keep.get(k) for k in ("labels", "annotations")) \
                    and (old.get("apiVersion"), old.get("kind")) == (doc.get("apiVersion"), doc.get("kind")):
                return old
            new = copy.deepcopy(old)
            new["apiVersion"], new["kind"] = doc.get("apiVersion"), doc.get("kind")
            for k in ("labels", "annotations"):
                new["metadata"].pop(k, None)
            new["metadata"].update(copy.deepcopy(keep))
            if spec != old.get("spec"):
                new["spec"] = spec
                new["metadata"]["generation"] = int(old_meta["generation"]) + 1
            return self._store(path, new)

    def delete(self, namespace: str, name: str) -> bool:
        """Remove a rollout (its events file stays, for the report). False if it did not exist."""
        path = self.path(namespace, name)
        with self._locked():
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            _fsync_dir(path.parent)
            return True

    @staticmethod
    def _validate(doc: Mapping[str, Any], source: str) -> None:
        body = {k: v for k, v in doc.items() if k != "status"}
        try:
            parse_rollout(body, source)
        except TemplateError as exc:
            raise InvalidRollout(str(exc)) from None
