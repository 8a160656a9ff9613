"""Validate objects against a CRD's ``openAPIV3Schema`` with ``jsonschema``.

The schema is converted to a JSON Schema, stricter than the API server on one point: a field the
schema does not know is an error here (the API server would prune it silently, which for objects
we write means a change that quietly disappears). ``x-kubernetes-int-or-string``, ``nullable``,
``x-kubernetes-preserve-unknown-fields`` and embedded resources are honoured; CEL rules
(``x-kubernetes-validations``) are not evaluated (the Istio ones only check durations, which the
routers never write).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parent / "data" / "crds"
REPO = Path(__file__).resolve().parent.parent
VIRTUALSERVICE_CRD = CRDS / "istio-virtualservice.yaml"
INFERENCESERVICE_CRD = CRDS / "kserve-inferenceservice.yaml"
ARGO_ROLLOUT_CRD = CRDS / "argo-rollout.yaml"
MODELROLLOUT_CRD = REPO / "deploy" / "crd" / "modelrollout.yaml"

_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def _convert(node: Any, root: bool = False) -> Any:
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _convert(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = _convert(value)
        elif key.startswith("x-kubernetes-") or key in ("description", "format", "example", "externalDocs"):
            continue
        else:
            out[key] = copy.deepcopy(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    if root or node.get("x-kubernetes-embedded-resource"):
        out.setdefault("properties", {})
        for k, v in _META.items():
            out["properties"].setdefault(k, v)
    if (node.get("type") == "object" and "properties" in out and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crd(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return next(d for d in yaml.load_all(f, Loader=loader) if d)


@functools.cache
def validator(path: str | Path, version: str | None = None) -> jsonschema.protocols.Validator:
    crd = _crd(str(path))
    versions = crd["spec"]["versions"]
    v = next((x for x in versions if x["name"] == version), None) if version else \
        next((x for x in versions if x.get("storage")), versions[0])
    if v is None:
        raise KeyError(f"{path}: no version {version}")
    schema = _convert(v["schema"]["openAPIV3Schema"], root=True)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def errors(obj: dict[str, Any], crd: str | Path, version: str | None = None) -> list[str]:
    """Every schema violation of ``obj``, as ``path: message``; [] when valid."""
    if version is None and "/" in str(obj.get("apiVersion", "")):
        version = str(obj["apiVersion"]).split("/", 1)[1]
    out = []
    for e in validator(str(crd), version).iter_errors(obj):
        where = ".".join(str(p) for p in e.absolute_path)
        out.append(f"{where or '<root>'}: {e.message}")
    return sorted(out)


def assert_valid(obj: dict[str, Any], crd: str | Path, version: str | None = None) -> None:
    problems = errors(obj, crd, version)
    assert not problems, "\n".join(problems)
