"""The service's OpenAPI 3.0 document, written out by hand (it is small, and stays readable).

Kept next to the handlers' validation in ``verdict.py``: FIELDS there and the properties here
must name the same fields; a test checks they do.
"""

from __future__ import annotations

from typing import Any

_LABELS = {
    "type": "object",
    "description": "Prometheus label name -> value (matched exactly) or list of values (any of them); "
                   "merged over the policy's arm labels.",
    "maxProperties": 16,
    "additionalProperties": {
        "oneOf": [
            {"type": "string", "maxLength": 256},
            {"type": "array", "minItems": 1, "maxItems": 64, "items": {"type": "string", "maxLength": 256}},
        ]
    },
}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 256}
_START = {
    "description": "Analysis start: RFC 3339 or unix seconds. Omitted, empty or \"auto\": when the canary's "
                   "first series appeared.",
    "oneOf": [{"type": "string", "maxLength": 64}, {"type": "number"}],
}


def _request_schema(policies: list[str]) -> dict[str, Any]:
    name: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                            "description": "a policy in the service's policies directory"}
    if policies:
        name["example"] = policies[0]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["policy"],
        "properties": {
            "policy": {"oneOf": [name, {"type": "object", "description": "an inline judge policy "
                                                                         "(policies/README.md format)"}]},
            "start": _START,
            "canary": _LABELS,
            "baseline": _LABELS,
            "canaryHash": {**_TEXT, "description": "canary pod-template hash (Argo: podTemplateHashValue: Latest)"},
            "stableHash": {**_TEXT, "description": "stable pod-template hash (Argo: podTemplateHashValue: Stable)"},
            "baselineHash": {**_TEXT, "description": "alias of stableHash"},
            "hashLabel": {**_TEXT, "description": "Prometheus label carrying the hashes "
                                                  "(default rollouts_pod_template_hash)"},
            "namespace": {**_TEXT, "description": "echoed back; for logs and people"},
            "rollout": {**_TEXT, "description": "echoed back; for logs and people"},
        },
    }


_NUM = {"type": "number", "nullable": True}
_SAMPLES = {"type": "object", "required": ["canary", "baseline"],
            "properties": {"canary": _NUM, "baseline": _NUM}}
_VERDICT = {
    "type": "object",
    "required": ["verdict", "final", "reason", "reasons", "metrics", "samples", "policy", "start", "evaluatedAt"],
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail", "inconclusive"]},
        "final": {"type": "boolean", "description": "false while the judge may still change its answer "
                                                    "(before the horizon, no regression yet)"},
        "reason": {"type": "string"},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "metric": {"type": "string", "nullable": True, "description": "the metric that decided a fail"},
        "decidedAt": {**_NUM, "description": "seconds after start at which the verdict was decided"},
        "metrics": {"type": "array", "items": {
            "type": "object", "required": ["name", "type", "status", "samples"],
            "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                           "status": {"type": "string"}, "samples": _SAMPLES, "text": {"type": "string"}}}},
        "samples": _SAMPLES,
        "policy": {"type": "string"},
        "start": {"type": "string", "nullable": True},
        "evaluatedAt": {"type": "string"},
        "elapsed": _NUM,
        "horizon": {"type": "number"},
    },
}
_ERROR = {
    "type": "object", "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"}, "message": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "object", "required": ["field", "reason"],
                                                  "properties": {"field": {"type": "string"},
                                                                 "reason": {"type": "string"}}}},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "the body is not JSON", 401: "missing or wrong bearer token", 413: "body too large",
            415: "not a JSON content type", 422: "invalid request; problems name the fields",
            503: "could not analyse: Prometheus unreachable or failing"}
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def openapi_document(policies: list[str]) -> dict[str, Any]:
    query = [
        {"name": "policy", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 64}},
        {"name": "start", "in": "query", "schema": {"type": "string", "maxLength": 64}},
        {"name": "canaryHash", "in": "query", "schema": {"type": "string", "maxLength": 256}},
        {"name": "stableHash", "in": "query", "schema": {"type": "string", "maxLength": 256}},
        {"name": "hashLabel", "in": "query", "schema": {"type": "string", "maxLength": 256}},
        {"name": "namespace", "in": "query", "schema": {"type": "string", "maxLength": 256}},
        {"name": "rollout", "in": "query", "schema": {"type": "string", "maxLength": 256}},
    ]
    verdict_ok = _json({"$ref": "#/components/schemas/Verdict"},
                       "a decided verdict (pass, fail or inconclusive): Argo reads it with jsonPath {$}")
    return {
        "openapi": "3.0.3",
        "info": {"title": "rollout-analyzer", "version": "1",
                 "description": "Statistical canary-vs-baseline verdicts for Argo Rollouts' web metric provider "
                                "(docs/web-provider.md). Arm labels by GET: canary.<label>=<value> parameters."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"VerdictRequest": _request_schema(policies), "Verdict": _VERDICT, "Error": _ERROR},
        },
        "paths": {
            "/api/v1/verdict": {
                "get": {"operationId": "getVerdict", "security": [{"bearer": []}], "parameters": query,
                        "responses": {"200": verdict_ok, **_errors(401, 422, 503)}},
                "post": {"operationId": "postVerdict", "security": [{"bearer": []}],
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/VerdictRequest"}}}},
                         "responses": {"200": verdict_ok, **_errors(400, 401, 413, 415, 422, 503)}},
            },
            "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _json(
                {"type": "object", "properties": {"status": {"type": "string"}}}, "the process is up")}}},
            "/readyz": {"get": {"operationId": "readyz", "responses": {
                "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "Prometheus answers"),
                "503": _json({"$ref": "#/components/schemas/Error"}, "Prometheus does not answer")}}},
            "/metrics": {"get": {"operationId": "metrics", "responses": {"200": {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
    }
