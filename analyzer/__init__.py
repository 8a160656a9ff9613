"""rollout-analyzer."""

from analyzer.core.expressions import ExpressionError, evaluate_condition
from analyzer.simulation import simulate

__all__ = ["ExpressionError", "evaluate_condition", "simulate"]
