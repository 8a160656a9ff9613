"""Statistical canary-vs-baseline judges (pure: numbers in, explained verdicts out).

Entry point: ``judge(steps, spec)``. See docs/statistics.md for the design and its guarantees.
"""

from analyzer.core.stats.judge import judge
from analyzer.core.stats.model import (
    Decision,
    Effect,
    Evidence,
    JudgeSpec,
    Method,
    MetricReport,
    MetricSpec,
    MetricType,
    Needed,
    Verdict,
)
from analyzer.core.stats.steps import Arm, Steps, bucket_counts, increments

__all__ = [
    "Arm", "Decision", "Effect", "Evidence", "JudgeSpec", "Method", "MetricReport", "MetricSpec", "MetricType",
    "Needed", "Steps", "Verdict", "bucket_counts", "increments", "judge",
]
