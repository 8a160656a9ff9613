"""Provider outcome -> measurement phase: Argo's EvaluateResult truth table (argo-semantics.md §4)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expressions import evaluate_condition
from analyzer.core.model import Measurement, Phase
from analyzer.core.outcome import ProviderOutcome

NO_DATA = "metric result is nil or empty: no data returned from the metric provider"


def assess(success: str, failure: str, result: Any, now: datetime | None = None) -> tuple[Phase, str]:
    """Phase and error message for one provider value. An evaluation error is phase Error."""
    success_true = failure_true = False
    if success:
        try:
            success_true = evaluate_condition(success, result, now=now)
        except ExpressionError as exc:
            return Phase.ERROR, _message("successCondition", success, result, exc)
    if failure:
        try:
            failure_true = evaluate_condition(failure, result, now=now)
        except ExpressionError as exc:
            return Phase.ERROR, _message("failureCondition", failure, result, exc)
    if not success and not failure:
        return Phase.SUCCESSFUL, ""
    if success and not failure:
        return (Phase.SUCCESSFUL if success_true else Phase.FAILED), ""
    if failure and not success:
        return (Phase.FAILED if failure_true else Phase.SUCCESSFUL), ""
    if failure_true:
        return Phase.FAILED, ""
    return (Phase.SUCCESSFUL if success_true else Phase.INCONCLUSIVE), ""


def _message(which: str, expr: str, result: Any, exc: ExpressionError) -> str:
    # Argo (formatEvalError/isNilOrEmpty) reports "no data" for any evaluation error when the result
    # is nil or an empty slice/array (§14.6); an empty map or string is not "empty" there.
    empty = result is None or (isinstance(result, list | tuple) and len(result) == 0)
    detail = NO_DATA if empty else exc.message
    return f'could not evaluate {which} "{expr}": {detail}'


def go_float(x: float) -> str:
    """Go's strconv.FormatFloat(x, 'f', -1, 64): shortest round-trip digits, no exponent."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    # repr() is already the shortest round-trip form; Decimal only undoes the exponent notation.
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def value_text(value: Any) -> str:
    """The measurement ``value`` string for a provider value whose provider gave none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return go_float(float(value))
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, list) and all(isinstance(v, float | int) and not isinstance(v, bool) for v in value):
        return "[" + ",".join(go_float(float(v)) for v in value) + "]"
    return json.dumps(_go_json(value), separators=(",", ":"), sort_keys=True)


def _go_json(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_go_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _go_json(v) for k, v in value.items()}
    return value


def to_measurement(success: str, failure: str, outcome: ProviderOutcome, started_at: datetime,
                   finished_at: datetime) -> Measurement:
    """A finished measurement from one provider outcome (provider errors become phase Error)."""
    if outcome.error is not None:
        return Measurement(Phase.ERROR, message=outcome.error, started_at=started_at, finished_at=finished_at,
                           metadata=dict(outcome.metadata))
    phase, message = assess(success, failure, outcome.value, started_at)
    text = "" if phase == Phase.ERROR else (outcome.value_text or value_text(outcome.value))
    return Measurement(phase, value=text, message=message, started_at=started_at, finished_at=finished_at,
                       metadata=dict(outcome.metadata))
