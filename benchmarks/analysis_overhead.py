"""Engine overhead per measurement (no Prometheus round-trip) and condition-evaluation rate.

Targets (issue #2): < 1 ms per measurement; >= 200,000 evaluations/s of `result[0] >= 0.99`.
The measurement loop is the real one the live runner uses: plan -> to_measurement -> apply,
with a provider outcome already in hand, on a run of 3 metrics with 10 retained measurements.
Prints a table; exits 1 if a target is missed.
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import UTC, datetime, timedelta

from analyzer import evaluate_condition  # the public API, as other tools call it
from analyzer.argo.templates import merge_args, parse_template
from analyzer.core import analysis
from analyzer.core.conditions import to_measurement
from analyzer.core.model import RunStatus
from analyzer.core.outcome import ProviderOutcome

TEMPLATE = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "bench"},
    "spec": {
        "args": [{"name": "threshold", "value": "0.99"}],
        "metrics": [
            {"name": f"m{i}", "interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 1_000_000,
             "successCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] >= {{args.threshold}}",
             "failureCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] < {{args.threshold}}",
             "provider": {"prometheus": {"address": "http://p:9090", "query": f"sum(rate(x{i}[5m]))"}}}
            for i in range(3)
        ],
    },
}


def bench_measurements(rounds: int) -> float:
    spec, _ = merge_args(parse_template(TEMPLATE), {})
    status = RunStatus()
    now = datetime(2024, 1, 1, tzinfo=UTC)
    outcome = ProviderOutcome(value=[0.995], value_text="[0.995]")
    taken = 0
    start = time.perf_counter()
    for _ in range(rounds):
        plan = analysis.plan(spec, status, now)
        measured = {m.name: to_measurement(m.success_condition, m.failure_condition, outcome, now, now)
                    for m in plan.due}
        analysis.apply(spec, status, plan, measured, now)
        taken += len(measured)
        now += timedelta(minutes=1, seconds=1)
    elapsed = time.perf_counter() - start
    assert status.phase is not None and status.phase.value == "Running", status.phase
    assert taken == rounds * 3, taken
    return elapsed / taken


def bench_conditions(n: int) -> float:
    result = [0.995]
    expr = "result[0] >= 0.99"
    evaluate_condition(expr, result)  # compile once (cached afterwards)
    start = time.perf_counter()
    for _ in range(n):
        evaluate_condition(expr, result)
    return n / (time.perf_counter() - start)


def main() -> int:
    per_measurement = min(bench_measurements(2000) for _ in range(3))
    rate = max(bench_conditions(200_000) for _ in range(3))
    rows = [
        ("engine overhead per measurement", f"{per_measurement * 1e3:.3f} ms", "< 1 ms", per_measurement < 1e-3),
        ("condition evaluations/s (result[0] >= 0.99)", f"{rate:,.0f}", ">= 200,000", rate >= 200_000),
    ]
    print(f"# analysis_overhead  python {platform.python_version()}  {platform.machine()}  "
          f"{datetime.now(UTC):%Y-%m-%d}")
    print(f"| {'measure':<46} | {'result':>12} | {'target':>10} | ok  |")
    print(f"|{'-' * 48}|{'-' * 14}|{'-' * 12}|-----|")
    for name, value, target, ok in rows:
        print(f"| {name:<46} | {value:>12} | {target:>10} | {'yes' if ok else 'NO':<3} |")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
