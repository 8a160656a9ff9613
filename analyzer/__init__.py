"""rollout-analyzer."""

from datetime import UTC, datetime
from typing import Any

from analyzer.core.expressions import ExpressionError
from analyzer.core.expressions import evaluate_condition as _evaluate_condition
from analyzer.simulation import simulate


def evaluate_condition(expression: str, result: Any) -> bool:
    """Evaluate an Argo success/failure condition against a provider result (stable API).

    ``result`` is a list of floats for a Prometheus vector, a float for a scalar, decoded JSON
    for the web provider, a str for a non-JSON body, None for nil. Raises ExpressionError on any
    compile or evaluation error, a non-bool outcome included. ``now()`` is the wall clock, as
    in Argo.
    """
    return _evaluate_condition(expression, result, now=datetime.now(UTC))

__all__ = ["ExpressionError", "evaluate_condition", "judge_series", "simulate"]


def __getattr__(name: str) -> Any:
    # The judge pulls in numpy and scipy: load it only when asked for.
    if name == "judge_series":
        from analyzer.judge import judge_series

        return judge_series
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
