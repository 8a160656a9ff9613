"""The AnalysisRun engine against Argo Rollouts' own code and tests.

Expected values come from reading argoproj/argo-rollouts at 9f8d111d8 (analysis/analysis.go,
utils/analysis/{helpers,factory}.go, utils/template/template.go, utils/evaluate/evaluate.go);
where a Go test pins the behaviour its name is given. Three layers are exercised:

* the pure core (``assess_metric``, ``plan``/``apply``, ``due_time``/``next_wake``), mirroring the
  Go unit tests state for state;
* argument substitution and validation (``resolve_metric``, ``build_metrics``);
* whole runs through ``analyzer.simulate`` in the conformance-case format (scripted outcomes,
  measurement rounds), the way the hidden conformance set is run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import analyzer
from analyzer.core.analysis import (
    Plan,
    RunSpec,
    apply,
    assess_metric,
    due_time,
    next_wake,
    plan,
)
from analyzer.core.args import Arg, ArgError, go_quote, metric_json, resolve_metric, resolve_text
from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.metric import Metric, SpecInvalid, build_metrics, int_or_string
from analyzer.core.model import Measurement, MetricResult, Phase, RunStatus

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SC = "result[0] >= 0.95"
OK = {"value": [0.99]}
BAD = {"value": [0.5]}
NO_DATA = "metric result is nil or empty: no data returned from the metric provider"


def err(msg: str = "boom") -> dict[str, str]:
    return {"error": msg}


def secs(n: float) -> timedelta:
    return timedelta(seconds=n)


# --------------------------------------------------------------------------------------------
# builders


def mk(name: str = "m", *, interval: float | None = None, count: int | None = None, failure_limit: int = 0,
       inconclusive_limit: int = 0, consecutive_error_limit: int = 4, csl: int = 0,
       initial_delay: float | None = None) -> Metric:
    """A typed metric without validation (the Go assess* tests build such metrics freely)."""
    return Metric(name=name, raw={}, interval=interval, initial_delay=initial_delay, count=count,
                  success_condition="", failure_condition="", failure_limit=failure_limit,
                  inconclusive_limit=inconclusive_limit, consecutive_error_limit=consecutive_error_limit,
                  consecutive_success_limit=csl, provider_kind="job", provider={})


def meas(phase: Phase, at: datetime | None = T0, *, message: str = "", finished: bool = True) -> Measurement:
    return Measurement(phase, value="1", message=message, started_at=at, finished_at=at if finished else None)


def res(name: str = "m", phase: Phase = Phase.RUNNING, measurements: list[Measurement] | None = None,
        **counters: int) -> MetricResult:
    r = MetricResult(name=name, phase=phase, measurements=list(measurements or []))
    for k, v in counters.items():
        setattr(r, k, v)
    return r


def prom(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields, "provider": {"prometheus": {"query": "q"}}}


def web(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields, "provider": {"web": {"url": "http://x"}}}


def job(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields, "provider": {"job": {}}}


def spec_of(*metrics: Mapping[str, Any], **kw: Any) -> RunSpec:
    return RunSpec(metrics=tuple(metrics), **kw)


def reconcile(spec: RunSpec, status: RunStatus, now: datetime = T0,
              measured: Mapping[str, Measurement] | None = None, secrets: Any = None) -> tuple[Plan, RunStatus]:
    p = plan(spec, status, now, secrets)
    apply(spec, status, p, dict(measured or {}), now)
    return p, status


def template(metrics: list[Mapping[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "t"},
            "spec": {"metrics": metrics, **spec}}


def sim(metrics: list[Mapping[str, Any]], outcomes: Mapping[str, list[Any]] | None = None, *,
        terminate_after: int | None = None, supplied: Mapping[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """simulate() on a template whose spec holds ``metrics`` and ``spec`` (args, dryRun, ...)."""
    return analyzer.simulate(template(metrics, **spec), outcomes or {}, args=supplied, terminate_after=terminate_after)


def results_by_name(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in status["metricResults"]}


def waits(mr: Mapping[str, Any]) -> list[str]:
    times = [datetime.fromisoformat(m["startedAt"].replace("Z", "+00:00")) for m in mr["measurements"]]
    return [_dur(b - a) for a, b in zip(times, times[1:], strict=False)]


def _dur(d: timedelta) -> str:
    s = int(d.total_seconds())
    return f"{s // 60}m" if s % 60 == 0 and s else f"{s}s"


SUMMARY0 = {"count": 0, "successful": 0, "failed": 0, "inconclusive": 0, "error": 0}


def summary(**kw: int) -> dict[str, int]:
    return {**SUMMARY0, **kw}


# --------------------------------------------------------------------------------------------
# assessMetricStatus / assessMetricFailureInconclusiveOrError (analysis/analysis.go)


def test_assess_no_measurements() -> None:
    # TestAssessMetricStatusNoMeasurements
    assert assess_metric(mk(), res(), False) == Phase.PENDING
    assert assess_metric(mk(), res(), True) == Phase.SUCCESSFUL


def test_assess_in_flight_measurement() -> None:
    # TestAssessMetricStatusInFlightMeasurement
    r = res(measurements=[meas(Phase.SUCCESSFUL), meas(Phase.RUNNING, finished=False)])
    assert assess_metric(mk(), r, False) == Phase.RUNNING
    assert assess_metric(mk(), r, True) == Phase.RUNNING


def test_assess_failure_limit() -> None:
    # TestAssessMetricStatusFailureLimit
    r = res(measurements=[meas(Phase.FAILED)], failed=3, count=3)
    assert assess_metric(mk(interval=60, failure_limit=2), r, False) == Phase.FAILED
    assert assess_metric(mk(interval=60, failure_limit=2), r, True) == Phase.FAILED
    assert assess_metric(mk(interval=60, failure_limit=3), r, False) == Phase.RUNNING
    assert assess_metric(mk(interval=60, failure_limit=3), r, True) == Phase.SUCCESSFUL


def test_assess_consecutive_success_limit() -> None:
    # TestAssessMetricStatusConsecutiveSuccessLimit
    r = res(measurements=[meas(Phase.FAILED)], failed=3, successful=4, consecutive_success=3, count=7)
    for terminating in (False, True):
        assert assess_metric(mk(interval=60, failure_limit=-1, csl=3), r, terminating) == Phase.SUCCESSFUL
    assert assess_metric(mk(interval=60, failure_limit=-1, csl=5), r, False) == Phase.RUNNING
    assert assess_metric(mk(interval=60, failure_limit=-1, csl=5), r, True) == Phase.SUCCESSFUL
    # count reached (7): CSL 5 not met and failureLimit disabled => Failed
    for terminating in (False, True):
        assert assess_metric(mk(interval=60, count=7, failure_limit=-1, csl=5), r, terminating) == Phase.FAILED
        assert assess_metric(mk(interval=60, count=7, failure_limit=-1, csl=3), r, terminating) == Phase.SUCCESSFUL
        assert assess_metric(mk(interval=60, count=9, failure_limit=-1, csl=3), r, terminating) == Phase.SUCCESSFUL
    assert assess_metric(mk(interval=60, count=9, failure_limit=-1, csl=5), r, False) == Phase.RUNNING
    assert assess_metric(mk(interval=60, count=9, failure_limit=-1, csl=5), r, True) == Phase.SUCCESSFUL


@pytest.mark.parametrize(("count", "failed", "successful", "n", "cs", "running", "terminating"), [
    # indefinite (no count)
    (None, 3, 4, 7, 3, Phase.RUNNING, Phase.SUCCESSFUL),
    (None, 5, 9, 9, 0, Phase.FAILED, Phase.FAILED),
    (None, 3, 5, 8, 4, Phase.SUCCESSFUL, Phase.SUCCESSFUL),
    (None, 5, 5, 10, 4, Phase.FAILED, Phase.FAILED),
    # count 10 reached
    (10, 4, 6, 10, 3, Phase.INCONCLUSIVE, Phase.INCONCLUSIVE),
    (10, 5, 5, 10, 3, Phase.FAILED, Phase.FAILED),
    (10, 4, 6, 10, 4, Phase.SUCCESSFUL, Phase.SUCCESSFUL),
    (10, 5, 5, 10, 4, Phase.FAILED, Phase.FAILED),
    # count 10 not reached
    (10, 3, 5, 8, 3, Phase.RUNNING, Phase.SUCCESSFUL),
    (10, 5, 3, 8, 3, Phase.FAILED, Phase.FAILED),
    (10, 3, 5, 8, 4, Phase.SUCCESSFUL, Phase.SUCCESSFUL),
    (10, 5, 4, 9, 4, Phase.FAILED, Phase.FAILED),
])
def test_assess_failure_limit_and_csl(count: int | None, failed: int, successful: int, n: int, cs: int,
                                      running: Phase, terminating: Phase) -> None:
    # TestAssessMetricStatusFailureLimitAndConsecutiveSuccessLimit (failureLimit 4, CSL 4)
    metric = mk(interval=60, count=count, failure_limit=4, csl=4)
    r = res(measurements=[meas(Phase.FAILED)], failed=failed, successful=successful, count=n,
            consecutive_success=cs)
    assert assess_metric(metric, r, False) == running
    assert assess_metric(metric, r, True) == terminating


def test_assess_inconclusive_limit() -> None:
    # TestAssessMetricStatusInconclusiveLimit
    r = res(measurements=[meas(Phase.INCONCLUSIVE)], inconclusive=3, count=3)
    assert assess_metric(mk(interval=60, inconclusive_limit=2), r, False) == Phase.INCONCLUSIVE
    assert assess_metric(mk(interval=60, inconclusive_limit=2), r, True) == Phase.INCONCLUSIVE
    assert assess_metric(mk(interval=60, inconclusive_limit=3), r, False) == Phase.RUNNING
    assert assess_metric(mk(interval=60, inconclusive_limit=3), r, True) == Phase.SUCCESSFUL


def test_assess_consecutive_errors() -> None:
    # TestAssessMetricStatusConsecutiveErrors: default limit 4, Error on the 5th
    r = res(measurements=[meas(Phase.ERROR)], consecutive_error=5, count=5)
    assert assess_metric(mk(interval=60), r, False) == Phase.ERROR
    assert assess_metric(mk(interval=60), r, True) == Phase.ERROR
    r.consecutive_error = 4
    assert assess_metric(mk(interval=60), r, True) == Phase.SUCCESSFUL
    assert assess_metric(mk(interval=60), r, False) == Phase.RUNNING


def test_assess_count_reached() -> None:
    # TestAssessMetricStatusCountReached
    r = res(measurements=[meas(Phase.SUCCESSFUL)], successful=10, count=10)
    assert assess_metric(mk(count=10), r, False) == Phase.SUCCESSFUL
    r.successful, r.inconclusive = 5, 5
    assert assess_metric(mk(count=10), r, False) == Phase.INCONCLUSIVE


def test_assess_completed_metric_is_final() -> None:
    r = res(phase=Phase.FAILED, measurements=[meas(Phase.SUCCESSFUL)], successful=1, count=1)
    assert assess_metric(mk(), r, False) == Phase.FAILED


def test_limit_reason_messages() -> None:
    # TestAssessMetricFailureInconclusiveOrError, through a whole reconcile's run message
    cases = [
        (res(measurements=[meas(Phase.FAILED)], failed=1, count=1), Phase.FAILED, "failed (1) > failureLimit (0)"),
        (res(measurements=[meas(Phase.INCONCLUSIVE)], inconclusive=1, count=1), Phase.INCONCLUSIVE,
         "inconclusive (1) > inconclusiveLimit (0)"),
        (res(measurements=[meas(Phase.ERROR)], consecutive_error=5, error=5), Phase.ERROR,
         "consecutiveErrors (5) > consecutiveErrorLimit (4)"),
    ]
    for r, phase, reason in cases:
        status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[r])
        reconcile(spec_of(job("m")), status, T0 + secs(1))
        assert (status.phase, status.message) == (phase, f'Metric "m" assessed {phase} due to {reason}')
        assert assess_metric(mk(), r, True) == phase


# --------------------------------------------------------------------------------------------
# generateMetricTasks / calculateNextReconcileTime


def _due_names(spec: RunSpec, status: RunStatus, now: datetime) -> list[str]:
    return [m.name for m in plan(spec, status, now).due]


def test_tasks_interval() -> None:
    # TestGenerateMetricTasksInterval: 60s interval, last finished 50s ago => not due; 61s ago => due
    spec = spec_of(job("success-rate", interval="60s"))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("success-rate", measurements=[meas(Phase.SUCCESSFUL, T0)], successful=1, count=1)])
    assert _due_names(spec, status, T0 + secs(50)) == []
    assert _due_names(spec, status, T0 + secs(61)) == ["success-rate"]


def test_tasks_none_when_a_metric_failed() -> None:
    # TestGenerateMetricTasksFailing
    spec = spec_of(job("success-rate"), job("latency"))
    status = RunStatus(phase=Phase.RUNNING, metric_results=[res("latency", Phase.FAILED)])
    assert _due_names(spec, status, T0) == []
    assert _due_names(spec, RunStatus(phase=Phase.RUNNING), T0) == ["success-rate", "latency"]


def test_tasks_no_interval_or_count() -> None:
    # TestGenerateMetricTasksNoIntervalOrCount
    spec = spec_of(job("success-rate"))
    status = RunStatus(phase=Phase.RUNNING, metric_results=[
        res("success-rate", measurements=[meas(Phase.SUCCESSFUL, T0 - secs(50))], count=1)])
    assert _due_names(spec, status, T0) == []
    assert _due_names(spec, RunStatus(phase=Phase.RUNNING, metric_results=[res("success-rate")]), T0) == [
        "success-rate"]


def test_tasks_honor_initial_delay() -> None:
    # TestGenerateMetricTasksHonorInitialDelay
    spec = spec_of(job("success-rate", initialDelay="20s"))
    assert _due_names(spec, RunStatus(phase=Phase.RUNNING), T0) == []  # no startedAt yet
    assert _due_names(spec, RunStatus(phase=Phase.RUNNING, started_at=T0 - secs(10)), T0) == []
    assert _due_names(spec, RunStatus(phase=Phase.RUNNING, started_at=T0 - secs(20)), T0) == ["success-rate"]


def test_tasks_error_retried_after_10s_whatever_the_interval() -> None:
    # TestGenerateMetricTasksError / TestCalculateNextReconcileUponError
    for fields in ({}, {"interval": "5m"}):
        spec = spec_of(job("success-rate", **fields))
        status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
            res("success-rate", measurements=[meas(Phase.ERROR, T0)], error=1, consecutive_error=1)])
        assert _due_names(spec, status, T0 + secs(9)) == []
        assert _due_names(spec, status, T0 + secs(10)) == ["success-rate"]
        p = plan(spec, status, T0 + secs(1))
        assert next_wake(p, status, T0 + secs(1)) == T0 + secs(10)


def test_next_reconcile_interval_and_completed() -> None:
    # TestCalculateNextReconcileTimeInterval / TestCalculateNextReconcileTimeNoInterval
    spec = spec_of(job("success-rate", interval="60s"))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("success-rate", measurements=[meas(Phase.SUCCESSFUL, T0 - secs(30))], successful=1, count=1)])
    assert next_wake(plan(spec, status, T0), status, T0) == T0 + secs(30)
    status.metric_results[0].phase = Phase.SUCCESSFUL
    assert next_wake(plan(spec, status, T0), status, T0) is None
    one = spec_of(job("success-rate", count=1))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("success-rate", Phase.SUCCESSFUL, [meas(Phase.SUCCESSFUL, T0)], successful=1, count=1)])
    assert next_wake(plan(one, status, T0), status, T0) is None


def test_next_reconcile_initial_delay_and_earliest() -> None:
    # TestCalculateNextReconcileTimeInitialDelay / TestCalculateNextReconcileEarliestMetric
    spec = spec_of(job("success-rate", interval="60s"), job("start-delay", interval="60s", initialDelay="40s"))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0 - secs(30), metric_results=[
        res("success-rate", measurements=[meas(Phase.SUCCESSFUL, T0 - secs(30))], successful=1, count=1)])
    assert next_wake(plan(spec, status, T0), status, T0) == T0 + secs(10)
    spec = spec_of(job("success-rate", interval="60s"), job("latency", interval="60s"))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0 - secs(60), metric_results=[
        res("success-rate", measurements=[meas(Phase.SUCCESSFUL, T0 - secs(30))], count=1),
        res("latency", measurements=[meas(Phase.SUCCESSFUL, T0 - secs(50))], count=1)])
    assert next_wake(plan(spec, status, T0), status, T0) == T0 + secs(10)


def test_due_time_new_metric_and_scale() -> None:
    metric = build_metrics([job("m", interval="1m")])[0]
    assert due_time(metric, RunStatus(), T0) == T0
    status = RunStatus(started_at=T0, metric_results=[res(measurements=[meas(Phase.SUCCESSFUL, T0)], count=1)])
    assert due_time(metric, status, T0) == T0 + secs(60)
    assert due_time(metric, status, T0, 60.0) == T0 + secs(1)  # time_scale divides every wait


# --------------------------------------------------------------------------------------------
# reconcile: assessRunStatus, errors, retention, secrets


def test_assess_run_running_until_all_complete() -> None:
    # TestAssessRunStatus
    spec = spec_of(job("latency"), job("success-rate"))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("latency", Phase.SUCCESSFUL), res("success-rate", Phase.RUNNING, [meas(Phase.RUNNING, finished=False)])])
    reconcile(spec, status)
    assert (status.phase, status.message) == (Phase.RUNNING, "")
    status.metric_results[1] = res("success-rate", Phase.FAILED)
    reconcile(spec, status)
    assert (status.phase, status.message) == (Phase.FAILED, "")  # completed earlier: no limit reason now


def test_assess_run_updates_metric_phase_while_run_still_running() -> None:
    # TestAssessRunStatusUpdateResult: the failing metric flips to Failed; the run stays Running
    # in this reconcile because "terminating" was computed before
    spec = spec_of(job("sleep-infinity"), job("fail-after-30"))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("sleep-infinity", measurements=[meas(Phase.RUNNING, finished=False)]),
        res("fail-after-30", measurements=[meas(Phase.FAILED)], count=1, failed=1)])
    reconcile(spec, status)
    assert (status.phase, status.message) == (Phase.RUNNING, "")
    assert status.metric_results[1].phase == Phase.FAILED


def _terminating_run(status_phase: Phase) -> RunStatus:
    """newTerminatingRun: run-forever in flight, failed-metric already completed."""
    failed = res("failed-metric", status_phase, [meas(Phase.ERROR if status_phase == Phase.ERROR else status_phase)],
                 count=1)
    if status_phase == Phase.FAILED:
        failed.failed = 1
    elif status_phase == Phase.INCONCLUSIVE:
        failed.inconclusive = 1
    return RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("run-forever", Phase.SUCCESSFUL, [meas(Phase.RUNNING, finished=False)]), failed])


@pytest.mark.parametrize("dry", [False, True])
def test_worst_message_and_error_message(dry: bool) -> None:
    # TestAssessRunStatusErrorMessageAnalysisPhaseFail(+InDryRunMode),
    # TestAssessRunStatusErrorMessageFromProvider(+InDryRunMode)
    dry_rules = ("run-forever", "failed-metric") if dry else ()
    spec = spec_of(job("run-forever"), job("failed-metric"), dry_run=dry_rules)
    for provider_message in ("", "Provider Error"):
        status = _terminating_run(Phase.FAILED)
        status.metric_results[1].message = provider_message
        for r in status.metric_results:
            r.dry_run = dry
        reconcile(spec, status)
        if dry:
            assert (status.phase, status.message) == (Phase.SUCCESSFUL, "")
            assert status.dry_run_summary.to_json() == summary(count=2, successful=1, failed=1)
            # the dry-run metric's message is replaced, the provider's message is NOT appended
            assert status.metric_results[1].message == "Metric assessed Failed due to failed (1) > failureLimit (0)"
        else:
            want = 'Metric "failed-metric" assessed Failed due to failed (1) > failureLimit (0)'
            if provider_message:
                want += ': "Error Message: Provider Error"'
            assert (status.phase, status.message) == (Phase.FAILED, want)
            assert status.dry_run_summary.to_json() == SUMMARY0


@pytest.mark.parametrize("dry", [False, True])
def test_multiple_failures_first_in_spec_order_wins(dry: bool) -> None:
    # TestAssessRunStatusMultipleFailures(+InDryRunMode)
    dry_rules = ("run-forever", "failed-metric") if dry else ()
    spec = spec_of(job("run-forever"), job("failed-metric"), dry_run=dry_rules)
    status = _terminating_run(Phase.FAILED)
    status.metric_results[0] = res("run-forever", Phase.FAILED, [meas(Phase.FAILED)], failed=1, count=1)
    for r in status.metric_results:
        r.dry_run = dry
    reconcile(spec, status)
    if dry:
        assert (status.phase, status.message) == (Phase.SUCCESSFUL, "")
        assert status.dry_run_summary.to_json() == summary(count=2, failed=2)
    else:
        assert (status.phase, status.message) == (
            Phase.FAILED, 'Metric "run-forever" assessed Failed due to failed (1) > failureLimit (0)')
        assert status.run_summary.to_json() == summary(count=2, failed=2)


def test_mixed_dry_run_does_not_decide() -> None:
    # TestAssessRunStatusWithMixedMetrics (synchronous variant: run-forever's measurement completed)
    spec = spec_of(job("run-forever"), job("success-metric"), dry_run=("success-metric",))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("run-forever", measurements=[meas(Phase.SUCCESSFUL)], inconclusive=1, successful=1, count=2),
        res("success-metric", Phase.SUCCESSFUL, [meas(Phase.FAILED)], count=1, failed=1)])
    status.metric_results[1].dry_run = True
    reconcile(spec, status)
    assert (status.phase, status.message) == (
        Phase.INCONCLUSIVE, 'Metric "run-forever" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)')


def test_only_dry_run_metrics_successful() -> None:
    # TestAssessRunStatusWithOnlyDryRunMetrics
    spec = spec_of(job("success-metric"), dry_run=("success-metric",))
    status = RunStatus(metric_results=[res("success-metric", Phase.SUCCESSFUL, [meas(Phase.SUCCESSFUL)],
                                           successful=1, count=1)])
    reconcile(spec, status)
    assert status.phase == Phase.SUCCESSFUL


def test_terminate_before_first_measurement() -> None:
    # TestTerminateAnalysisRun(+InDryRunMode): initialDelay metric never starts
    for dry in ((), ("success-rate",)):
        spec = spec_of(web("success-rate", initialDelay="20s", interval="20s", successCondition="result[0] > 0.90"),
                       args=(Arg("service", "rollouts-demo-canary.default.svc.cluster.local"),), terminate=True,
                       dry_run=dry)
        status = RunStatus(phase=Phase.RUNNING, started_at=T0)
        reconcile(spec, status)
        assert (status.phase, status.message) == (Phase.SUCCESSFUL, "Run Terminated")
        assert status.metric_results == []
        want = summary(count=1)
        assert (status.dry_run_summary if dry else status.run_summary).to_json() == want


def test_terminating_sibling_not_measured() -> None:
    # TestReconcileAnalysisRunTerminateSiblingAfterFail (synchronous provider: nothing in flight)
    for phase in (Phase.FAILED, Phase.INCONCLUSIVE, Phase.ERROR):
        spec = spec_of(job("run-forever", interval="1m"), job("failed-metric"))
        failed = res("failed-metric", phase, [meas(phase)], count=1)
        status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
            res("run-forever", measurements=[meas(Phase.SUCCESSFUL, T0 - secs(120))], successful=1, count=1), failed])
        p, _ = reconcile(spec, status, T0)
        assert p.terminating and p.due == []
        assert status.phase == phase
        assert status.metric_results[0].phase == Phase.SUCCESSFUL


def test_consecutive_error_counter() -> None:
    # TestRunMeasurementsResetConsecutiveErrorCounter: an Error adds to error/consecutiveError, not count
    spec = spec_of(job("test"))
    status = RunStatus(phase=Phase.RUNNING, metric_results=[res("test", consecutive_error=4, count=4, error=4)])
    reconcile(spec, status, T0, {"test": meas(Phase.ERROR)})
    r = status.metric_results[0]
    assert (r.consecutive_error, r.error, r.count) == (5, 5, 4)
    for phase in (Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE):
        r = res("test", consecutive_error=4, count=4, error=4)
        r.record(meas(phase))
        assert (r.consecutive_error, r.error, r.count) == (0, 4, 5)


def test_run_level_error_sets_only_phase_and_message() -> None:
    # TestReconcileAnalysisRunInvalid (no provider); reconcileAnalysisRun's early return leaves
    # startedAt/completedAt/metricResults alone (code reading)
    status = RunStatus()
    reconcile(spec_of({"name": "success-rate"}), status)
    assert (status.phase, status.message) == (Phase.ERROR, "Analysis spec invalid: metrics[0]: no provider specified")
    assert status.started_at is None and status.completed_at is None and status.metric_results == []


def test_completed_at_set_on_completion() -> None:
    # TestCompletedTimeFilled
    spec = spec_of(job("metric1", interval="60s", count=1))
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res("metric1", Phase.SUCCESSFUL, [meas(Phase.SUCCESSFUL, T0 - secs(60))], count=1, successful=1)])
    reconcile(spec, status, T0 + secs(5))
    assert status.phase == Phase.SUCCESSFUL and status.completed_at == T0 + secs(5)
    reconcile(spec, status, T0 + secs(9))  # a completed run is never reconciled again
    assert status.completed_at == T0 + secs(5)


@pytest.mark.parametrize(("rules", "kept"), [
    ((), {"metric1": 10, "metric2": 10}),
    ((("metric2", 2),), {"metric1": 10, "metric2": 2}),
    ((("metric", 3),), {"metric1": 3, "metric2": 3}),  # unanchored regex
    ((("metric", 3), ("metric2", 5)), {"metric1": 3, "metric2": 5}),
    ((("metric2", 5), ("metric", 3)), {"metric1": 3, "metric2": 3}),  # the LAST matching rule wins
    ((("metric", 3), (".*", 0)), {"metric1": 10, "metric2": 10}),  # limit 0 => default 10
])
def test_measurement_retention(rules: tuple[tuple[str, int], ...], kept: dict[str, int]) -> None:
    # TestTrimMeasurementHistory / TestGarbageCollectArgResolution; GetMeasurementRetentionMetrics
    # overwrites the map entry for every matching rule (Go >= 1.22 loop variables)
    spec = spec_of(job("metric1", interval="1s"), job("metric2", interval="1s"), retention=rules)
    status = RunStatus(phase=Phase.RUNNING, started_at=T0, metric_results=[
        res(n, measurements=[meas(Phase.SUCCESSFUL, T0 + secs(i)) for i in range(12)], successful=12, count=12)
        for n in ("metric1", "metric2")])
    reconcile(spec, status, T0 + secs(11.5))
    got = {r.name: len(r.measurements) for r in status.metric_results}
    assert got == kept
    r = status.metric_results[0]
    assert r.count == 12 and r.measurements[-1].started_at == T0 + secs(11)  # newest kept, counters intact


def test_retention_and_dry_run_rules_must_match() -> None:
    # TestInvalidDryRunConfigThrowsError / TestInvalidMeasurementsRetentionConfigThrowsError
    m = web("success-rate", initialDelay="20s", interval="20s", successCondition="result[0] > 0.90")
    for kw, msg in ((dict(dry_run=("error-rate",)), "dryRun[0]: Rule didn't match any metric name(s)"),
                    (dict(retention=(("error-rate", 0),)), "measurementRetention[0]: Rule didn't match any metric name(s)"),
                    (dict(dry_run=("*",)), "dryRun[0]: Rule didn't match any metric name(s)"),
                    (dict(dry_run=("(?=success)",)), "dryRun[0]: Rule didn't match any metric name(s)"),
                    (dict(dry_run=("^success-rate$", "x"), retention=(("y", 1),)),
                     "dryRun[1]: Rule didn't match any metric name(s)")):
        status = RunStatus(phase=Phase.RUNNING, started_at=T0)
        reconcile(spec_of(m, terminate=True, **kw), status)
        assert (status.phase, status.message) == (Phase.ERROR, f"Analysis spec invalid: {msg}")


def test_dry_run_rules_are_go_regexps() -> None:
    # GetDryRunMetrics: regexp.MatchString (RE2, unanchored)
    metrics = (job("success-rate"), job("rates"), job("latency"))
    for rules, want in (((r"rate\z",), {"success-rate"}), (("rate",), {"success-rate", "rates"}),
                        (("^lat", "^rates$"), {"latency", "rates"}), ((".*",), {"success-rate", "rates", "latency"})):
        p = plan(spec_of(*metrics, dry_run=rules), RunStatus(), T0)
        assert p.error is None and p.dry_run == want, rules


def test_unresolvable_args_error_even_in_dry_run() -> None:
    # TestResolveMetricArgsUnableToSubstitute: the last unresolved tag in JSON order is reported,
    # and argument resolution comes before the (invalid) dryRun rule
    m = {"name": "rate", "successCondition": "{{args.does-not-exist}}",
         "provider": {"prometheus": {"query": "{{args.metric-name}}"}}}
    for dry in ((), ("*",)):
        status = RunStatus()
        reconcile(spec_of(m, dry_run=dry), status)
        assert (status.phase, status.message) == (
            Phase.ERROR, "Unable to resolve metric arguments: failed to resolve {{args.metric-name}}")


def test_resolved_prometheus_query_metadata() -> None:
    # TestGetMetadataIsCalled; prometheus GetMetadata stores the resolved query
    m = {"name": "rate", "successCondition": "result[0] > 0",
         "provider": {"prometheus": {"query": "{{args.metric-name}}"}}}
    status = sim([m], {"rate": [OK]}, args=[{"name": "metric-name", "value": "success-rate"}])
    assert status["phase"] == "Successful"
    assert status["metricResults"][0]["metadata"] == {"ResolvedPrometheusQuery": "success-rate"}


SECRET_SPEC = spec_of(
    {"name": "rate", "successCondition": "result > {{args.metric-name}}",
     "provider": {"web": {"url": "http://x", "headers": [{"key": "apikey", "value": "{{args.secret}}"}]}}},
    args=(Arg("secret", secret_name="web-metric-secret", secret_key="apikey"), Arg("metric-name", "1")))


def test_secret_resolution_and_redaction() -> None:
    # TestSecretResolution / TestSecretContentReferenceProviderError
    secrets = {"web-metric-secret": {"apikey": "12345"}}
    status = RunStatus()
    p = plan(SECRET_SPEC, status, T0, secrets)
    assert p.error is None
    assert p.due[0].provider["headers"] == [{"key": "apikey", "value": "12345"}]
    assert p.metrics[0].provider["headers"] == [{"key": "apikey", "value": "temp-for-secret"}]
    failing = Measurement(Phase.ERROR, message="Error with Header Value: 12345", started_at=T0, finished_at=T0)
    apply(SECRET_SPEC, status, p, {"rate": failing}, T0)
    assert status.metric_results[0].measurements[0].message == "Error with Header Value: *****"


@pytest.mark.parametrize(("secrets", "message"), [
    ({}, 'secrets "web-metric-secret" not found'),  # TestSecretNotFound
    ({"web-metric-secret": {}}, "key 'apikey' does not exist in secret 'web-metric-secret'"),  # TestKeyNotInSecret
])
def test_secret_errors(secrets: dict[str, dict[str, str]], message: str) -> None:
    status = RunStatus()
    reconcile(SECRET_SPEC, status, secrets=secrets)
    assert (status.phase, status.message) == (Phase.ERROR, f"Unable to resolve metric arguments: {message}")


def test_secret_placeholder_used_for_validation() -> None:
    # getResolvedMetricsWithoutSecrets: a secret arg reads "temp-for-secret" during validation, so
    # a count taken from a secret is 0 there (intOrString: unparsable => 0)
    spec = spec_of(job("m", count="{{args.n}}", interval="1m"), args=(Arg("n", secret_name="s", secret_key="k"),))
    p = plan(spec, RunStatus(), T0, {"s": {"k": "3"}})
    assert p.error is None and p.metrics[0].count == 0 and p.due[0].count == 3


# --------------------------------------------------------------------------------------------
# utils/template + ResolveMetricArgs


def test_template_resolution_unit() -> None:
    # TestResolveArgsWithNoSubstitution, TestResolveArgsRemoveWhiteSpace, TestResolveArgsWithSubstitution,
    # TestInvalidTemplate, TestMissingArgs, TestResolveArgsValueNotSupplied, TestResolveQuotedArgs
    assert resolve_text("test", []) == "test"
    assert resolve_text("test-{{ args.var }}", [("var", "foo")]) == "test-foo"
    assert resolve_text("test-{{args.var}}", [("var", "foo")]) == "test-foo"
    with pytest.raises(ArgError) as e:
        resolve_text("test-{{args.var", [])
    assert str(e.value) == 'Cannot find end tag="}}" in the template="test-{{args.var" starting from "args.var"'
    with pytest.raises(ArgError) as e:
        resolve_text("test-{{args.var}}", [])
    assert str(e.value) == "failed to resolve {{args.var}}"
    with pytest.raises(ArgError) as e:
        resolve_text("{{args.test}}", [("test", None)])
    assert str(e.value) == 'argument "test" was not supplied'
    assert resolve_text("test-{{args.var}}", [("var", 'double quotes"newline\nand tab\t')]) == \
        'test-double quotes\\"newline\\nand tab\\t'


def test_resolve_metric_args_with_quotes() -> None:
    # TestResolveMetricArgs / TestResolveMetricArgsWithQuotes
    args = [("metric-name", "success-rate"), ("metric-name2", "success-rate2")]
    assert resolve_metric({"name": "a", "successCondition": "result > {{args.metric-name}}"}, args)[
        "successCondition"] == "result > success-rate"
    value = 'foo "bar" baz\n\ttab \\ backslash <&> ü 😀'
    out = resolve_metric({"name": "rate", "successCondition": "{{args.rate}}"}, [("rate", value)])
    assert out["successCondition"] == value


def test_metric_json_is_gos() -> None:
    # json.Marshal(v1alpha1.Metric): struct order, omitempty, HTML escaping, always-present structs
    m = {"provider": {"prometheus": {"query": "a < b && c", "address": "http://p"}}, "name": "m",
         "successCondition": "result[0] > 1", "count": 3, "interval": "", "failureLimit": "{{args.f}}",
         "unknownField": "dropped"}
    assert metric_json(m) == (
        '{"name":"m","count":3,"successCondition":"result[0] \\u003e 1","failureLimit":"{{args.f}}",'
        '"provider":{"prometheus":{"address":"http://p","query":"a \\u003c b \\u0026\\u0026 c",'
        '"authentication":{"sigv4":{},"oauth2":{},"basicAuth":{}}}}}')
    assert metric_json({"name": "w", "provider": {"web": {"jsonPath": "{$.a}"}}}) == (
        '{"name":"w","provider":{"web":{"url":"","jsonPath":"{$.a}",'
        '"authentication":{"sigv4":{},"oauth2":{},"basicAuth":{}}}}}')


def test_go_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\a\b\f\n\r\t\v\x00\x7f") == '"\\a\\b\\f\\n\\r\\t\\v\\x00\\x7f"'
    assert go_quote("ü\u00a0\U0001F600") == '"ü\\u00a0😀"'


@pytest.mark.parametrize(("value", "message"), [
    ("\a", "invalid character 'a' in string escape code"),
    ("x\vy", "invalid character 'v' in string escape code"),
    ("\x01", "invalid character 'x' in string escape code"),
])
def test_control_characters_break_the_json(value: str, message: str) -> None:
    # strconv.Quote escapes these as \a, \v, \x01: not JSON escapes (code reading, §3.2)
    with pytest.raises(ArgError) as e:
        resolve_metric({"name": "m", "successCondition": "{{args.v}}"}, [("v", value)])
    assert str(e.value) == message


def test_int_or_string() -> None:
    # intstr.IntValue: strconv.Atoi on strings, 0 when it fails
    assert [int_or_string(v, None) for v in (3, "3", "+3", "-1", " 3", "3.0", "abc", "٣", None)] == \
        [3, 3, 3, -1, 0, 0, 0, 0, None]


@pytest.mark.parametrize(("text", "want"), [
    ("1m30s", 90.0), ("1.5h", 5400.0), (".5s", 0.5), ("1.s", 1.0), ("0", 0.0), ("-1s", -1.0), ("300ms", 0.3),
    ("1µs", 1e-6),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("60s-typo", 'time: unknown unit "s-typo" in duration "60s-typo"'),  # TestValidateMetrics regexp
    ("5 m", 'time: unknown unit " m" in duration "5 m"'),
    ("5M", 'time: unknown unit "M" in duration "5M"'),
    ("10", 'time: missing unit in duration "10"'),
    ("", 'time: invalid duration ""'), (".s", 'time: invalid duration ".s"'), ("s", 'time: invalid duration "s"'),
    ("9999999999h", 'time: invalid duration "9999999999h"'),
])
def test_go_durations(text: str, want: float | str) -> None:
    if isinstance(want, float):
        assert math.isclose(parse_go_duration_seconds(text), want)
    else:
        with pytest.raises(ValueError) as e:
            parse_go_duration_seconds(text)
        assert str(e.value) == want


# --------------------------------------------------------------------------------------------
# ValidateMetrics: every message, and which wins (utils/analysis/factory.go, factory_test.go)

P = {"prometheus": {"query": "q"}}


@pytest.mark.parametrize(("metrics", "message"), [
    ([], "no metrics specified"),
    ([{"name": "m", "count": 1, "failureLimit": 2, "provider": P}],
     "metrics[0]: count (1) must be >= failureLimit + consecutiveSuccessLimit (2 + 0) if both >= 0"),
    ([{"name": "m", "count": 1, "inconclusiveLimit": 2, "provider": P}], "metrics[0]: count must be >= inconclusiveLimit"),
    ([{"name": "m", "count": 2, "provider": P}], "metrics[0]: interval must be specified when count > 1"),
    ([{"name": "m", "count": 2, "interval": "60s-typo", "failureLimit": 2, "provider": P}],
     'metrics[0]: invalid interval string: time: unknown unit "s-typo" in duration "60s-typo"'),
    ([{"name": "m", "count": 2, "interval": "60s", "initialDelay": "60s-typo", "failureLimit": 2, "provider": P}],
     'metrics[0]: invalid startDelay string: time: unknown unit "s-typo" in duration "60s-typo"'),
    ([{"name": "m", "provider": P}, {"name": "m", "provider": P}], "metrics[1]: duplicate name 'm'"),
    ([{"name": "m", "failureLimit": -2, "provider": P}], "metrics[0]: failureLimit must be >= 0, or -1 to be disabled"),
    ([{"name": "m", "inconclusiveLimit": -1, "provider": P}], "metrics[0]: inconclusiveLimit must be >= 0"),
    ([{"name": "m", "consecutiveErrorLimit": -1, "provider": P}], "metrics[0]: consecutiveErrorLimit must be >= 0"),
    ([{"name": "m", "count": 1}], "metrics[0]: no provider specified"),
    ([{"name": "m", "provider": {"prometheus": {}, "job": {}, "web": {}}}], "metrics[0]: multiple providers specified"),
    ([{"name": "m", "consecutiveSuccessLimit": -1, "provider": P}], "metrics[0]: consecutiveSuccessLimit must be >= 0"),
    ([{"name": "m", "consecutiveSuccessLimit": 0, "failureLimit": -1, "provider": P}],
     "metrics[0]: failureLimit and consecutiveSuccessLimit cannot both be disabled"),
    # precedence (first check in ValidateMetric order wins)
    ([{"name": "m", "consecutiveSuccessLimit": -1, "failureLimit": -2, "provider": P}],
     "metrics[0]: consecutiveSuccessLimit must be >= 0"),
    ([{"name": "m", "failureLimit": -2, "inconclusiveLimit": -1, "provider": P}],
     "metrics[0]: failureLimit must be >= 0, or -1 to be disabled"),
    ([{"name": "m", "failureLimit": -1, "inconclusiveLimit": -1, "provider": P}],
     "metrics[0]: failureLimit and consecutiveSuccessLimit cannot both be disabled"),
    ([{"name": "m", "inconclusiveLimit": -1, "consecutiveErrorLimit": -1, "provider": P}],
     "metrics[0]: inconclusiveLimit must be >= 0"),
    ([{"name": "m", "consecutiveErrorLimit": -1, "count": 1, "failureLimit": 3, "provider": P}],
     "metrics[0]: consecutiveErrorLimit must be >= 0"),
    ([{"name": "m", "count": 2, "interval": "1m", "failureLimit": 1, "consecutiveSuccessLimit": 2, "provider": P}],
     "metrics[0]: count (2) must be >= failureLimit + consecutiveSuccessLimit (1 + 2) if both >= 0"),
    ([{"name": "m", "count": 2, "interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 3, "provider": P}],
     "metrics[0]: count must be >= consecutiveSuccessLimit"),
    ([{"name": "m", "count": 1, "failureLimit": 2, "inconclusiveLimit": 5, "provider": P}],
     "metrics[0]: count (1) must be >= failureLimit + consecutiveSuccessLimit (2 + 0) if both >= 0"),
    ([{"name": "m", "count": 2, "failureLimit": 3, "provider": P}],
     "metrics[0]: count (2) must be >= failureLimit + consecutiveSuccessLimit (3 + 0) if both >= 0"),
    ([{"name": "m", "count": 3, "inconclusiveLimit": 4, "provider": P}], "metrics[0]: count must be >= inconclusiveLimit"),
    ([{"name": "m", "count": 2, "interval": "1d", "initialDelay": "x", "provider": P}],
     'metrics[0]: invalid interval string: time: unknown unit "d" in duration "1d"'),
    ([{"name": "m", "initialDelay": "5 m", "provider": {}}],
     'metrics[0]: invalid startDelay string: time: unknown unit " m" in duration "5 m"'),
    ([{"name": "m", "interval": "1m"}], "metrics[0]: no provider specified"),
    ([{"name": "m", "provider": {"plugin": {}}}], "metrics[0]: no provider specified"),
    ([{"name": "m", "provider": {"plugin": {"a/b": {}, "c/d": {}}}}], "metrics[0]: multiple providers specified"),
    ([{"name": "m", "provider": {"notAProvider": {}}}], "metrics[0]: no provider specified"),
    ([{"name": "a", "count": 2, "provider": P}, {"name": "a", "provider": P}],
     "metrics[0]: interval must be specified when count > 1"),
    ([{"name": "a", "provider": P}, {"name": "b", "provider": P}, {"name": "a", "count": 2, "provider": P}],
     "metrics[2]: duplicate name 'a'"),
])
def test_validate_metrics(metrics: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(SpecInvalid) as e:
        build_metrics(metrics)
    assert str(e.value) == message
    status = sim(metrics)
    assert (status["phase"], status["message"]) == ("Error", f"Analysis spec invalid: {message}")
    assert status["metricResults"] == [] and status["startedAt"] is None


@pytest.mark.parametrize("metric", [
    {"name": "m", "count": 0, "failureLimit": 2, "provider": P},  # factory_test: count 0 is fine
    {"name": "m", "count": 2, "interval": "60s", "failureLimit": 2, "provider": P},
    {"name": "m", "count": 2, "interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 2, "provider": P},
    {"name": "m", "failureLimit": 2, "provider": P},  # no count: one-shot, limit never reachable
    {"name": "m", "count": "abc", "provider": P},  # unparsable => 0
    {"name": "m", "count": -1, "provider": P},
])
def test_valid_metrics(metric: dict[str, Any]) -> None:
    build_metrics([metric])


def test_check_order_across_stages() -> None:
    # reconcileAnalysisRun: args (all metrics) -> ValidateMetrics -> dryRun -> measurementRetention
    bad = {"name": "a", "count": 2, "provider": P}
    unresolved = {"name": "b", "successCondition": "{{args.x}}", "provider": P}
    assert sim([bad, unresolved])["message"] == "Unable to resolve metric arguments: failed to resolve {{args.x}}"
    assert sim([bad], dryRun=[{"metricName": "zzz"}])["message"] == \
        "Analysis spec invalid: metrics[0]: interval must be specified when count > 1"
    assert sim([prom("a")], dryRun=[{"metricName": "zzz"}], measurementRetention=[{"metricName": "zzz", "limit": 1}])[
        "message"] == "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)"


# --------------------------------------------------------------------------------------------
# Arguments through whole runs


def test_args_missing_value_reported_even_if_unused() -> None:
    status = sim([prom("m", successCondition=SC)], {"m": [OK]}, args=[{"name": "unused"}])
    assert (status["phase"], status["message"]) == (
        "Error", 'Unable to resolve metric arguments: argument "unused" was not supplied')
    assert status["metricResults"] == []


def test_args_missing_value_wins_over_unresolved_placeholder() -> None:
    # ResolveArgs checks every argument before substituting any tag
    m = prom("m", successCondition="result[0] >= {{args.threshold}}")
    status = sim([m], {"m": [OK]}, args=[{"name": "a", "value": "1"}, {"name": "b"}, {"name": "c"}])
    assert status["message"] == 'Unable to resolve metric arguments: argument "b" was not supplied'


def test_args_field_ref_only_is_no_value() -> None:
    args = [{"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    status = sim([prom("m", successCondition=SC)], {"m": [OK]}, args=args)
    assert status["message"] == 'Unable to resolve metric arguments: argument "ns" was not supplied'


@pytest.mark.parametrize(("fields", "query", "tag"), [
    ({"successCondition": "{{args.a}}", "failureCondition": "{{args.b}}"}, "q", "{{args.b}}"),
    ({"successCondition": "{{args.x}}", "interval": "{{args.i}}"}, "q", "{{args.x}}"),  # interval comes first
    ({"successCondition": "{{args.a}}"}, "{{args.c}}", "{{args.c}}"),
    ({"successCondition": "{{args.a}}", "consecutiveSuccessLimit": "{{args.d}}", "failureLimit": "{{args.f}}"},
     "{{args.c}}", "{{args.d}}"),
    ({"count": "{{args.n}}", "initialDelay": "{{args.d}}"}, "q", "{{args.n}}"),
    ({"successCondition": "{{ args.nope }}"}, "q", "{{ args.nope }}"),  # reported as written
    ({"successCondition": "{{args.A}}"}, "q", "{{args.A}}"),  # case-sensitive
    ({"successCondition": "{{input.a}}"}, "q", "{{input.a}}"),
])
def test_args_last_unresolved_in_field_order(fields: dict[str, Any], query: str, tag: str) -> None:
    m = {"name": "m", **fields, "provider": {"prometheus": {"query": query}}}
    status = sim([m], {"m": [OK]}, args=[{"name": "a", "value": "true"}])
    assert (status["phase"], status["message"]) == ("Error", f"Unable to resolve metric arguments: failed to resolve {tag}")


def test_args_unresolved_in_first_metric_wins() -> None:
    status = sim([prom("a", successCondition="{{args.x}}"), prom("b", successCondition="{{args.y}}")])
    assert status["message"] == "Unable to resolve metric arguments: failed to resolve {{args.x}}"


def test_args_unclosed_tag_at_end_of_json() -> None:
    # fasttemplate: no "}}" anywhere after the "{{" (consecutiveSuccessLimit is the last field)
    m = prom("m", failureLimit=-1, consecutiveSuccessLimit="{{args.n")
    status = sim([m], {"m": [OK]}, args=[{"name": "n", "value": "1"}])
    assert status["message"] == (
        'Unable to resolve metric arguments: Cannot find end tag="}}" in the template="{\\"name\\":\\"m\\",'
        '\\"failureLimit\\":-1,\\"provider\\":{\\"prometheus\\":{\\"query\\":\\"q\\",\\"authentication\\":'
        '{\\"sigv4\\":{},\\"oauth2\\":{},\\"basicAuth\\":{}}}},\\"consecutiveSuccessLimit\\":\\"{{args.n\\"}" '
        'starting from "args.n\\"}"')


def test_args_unclosed_tag_closed_by_json_braces() -> None:
    # an unclosed "{{" earlier in the metric meets the "}}" of the provider's JSON: the tag then
    # runs to there and is reported as unresolved
    m = prom("m", successCondition="result[0] >= {{args.t")
    status = sim([m], {"m": [OK]}, args=[{"name": "t", "value": "0.9"}])
    assert status["message"] == (
        'Unable to resolve metric arguments: failed to resolve {{args.t","provider":{"prometheus":'
        '{"query":"q","authentication":{"sigv4":{},"oauth2":{},"basicAuth":{}}')


def test_args_unclosed_tag_beats_missing_value_only_in_its_own_metric() -> None:
    unclosed = prom("u", failureLimit=-1, consecutiveSuccessLimit="{{args.n")
    args = [{"name": "n"}]
    assert sim([unclosed], args=args)["message"].startswith(
        'Unable to resolve metric arguments: Cannot find end tag="}}"')
    assert sim([prom("ok", successCondition=SC), unclosed], args=args)["message"] == \
        'Unable to resolve metric arguments: argument "n" was not supplied'


def test_args_quotes_and_newlines_survive() -> None:
    query = 'sum(rate(http{code=~"5..", path="a\\b"}[5m]))\n\t/ 2 <&>'
    m = {"name": "m", "successCondition": 'result == "{{args.s}}"',
         "provider": {"prometheus": {"query": "{{args.q}}"}}}
    t = template([m], args=[{"name": "q", "value": query}, {"name": "s", "value": "it's"}])
    status = analyzer.simulate(t, {"m": [{"value": [1]}]})
    mr = status["metricResults"][0]
    assert mr["metadata"] == {"ResolvedPrometheusQuery": query}
    assert mr["measurements"][0]["phase"] == "Error"  # a vector is not the string "it's"
    assert mr["measurements"][0]["message"].startswith("""could not evaluate successCondition "result == "it's"": """)


def test_args_in_web_condition_string() -> None:
    m = {"name": "m", "successCondition": 'result == "{{args.expected}}"', "provider": {"web": {"url": "http://x"}}}
    t = template([m], args=[{"name": "expected", "value": "OK"}])
    assert analyzer.simulate(t, {"m": [{"value": "OK"}]})["phase"] == "Successful"
    assert analyzer.simulate(t, {"m": [{"value": "OK"}]}, args={"expected": "NOPE"})["phase"] == "Failed"


def test_args_numbers_from_strings() -> None:
    m = prom("m", successCondition="result[0] >= {{args.t}}", count="{{args.n}}", interval="{{args.i}}",
             failureLimit="{{args.f}}", inconclusiveLimit="{{ args.f }}")
    t = template([m], args=[{"name": "t", "value": "0.9"}, {"name": "n", "value": "3"}, {"name": "i", "value": "30s"},
                            {"name": "f", "value": "1"}])
    status = analyzer.simulate(t, {"m": [{"value": [0.1]}, {"value": [0.95]}, {"value": [0.1]}, OK]})
    mr = status["metricResults"][0]
    assert (status["phase"], status["message"]) == ("Failed", 'Metric "m" assessed Failed due to failed (2) > failureLimit (1)')
    assert [x["phase"] for x in mr["measurements"]] == ["Failed", "Successful", "Failed"]
    assert waits(mr) == ["30s", "30s"]
    # the same template, count overridden at run time
    status = analyzer.simulate(t, {"m": [{"value": [0.95]}] * 5}, args={"n": "2"})
    assert status["phase"] == "Successful" and len(status["metricResults"][0]["measurements"]) == 2


def test_args_unparsable_count_is_zero() -> None:
    with_interval = prom("m", successCondition=SC, count="{{args.n}}", interval="10s")
    t = template([with_interval], args=[{"name": "n", "value": "three"}])
    status = analyzer.simulate(t, {"m": [OK, OK, OK]})
    assert status["phase"] == "Running" and len(status["metricResults"][0]["measurements"]) == 3  # indefinite
    t = template([prom("m", successCondition=SC, count="{{args.n}}")], args=[{"name": "n", "value": " 2"}])
    status = analyzer.simulate(t, {"m": [OK, OK, OK]})
    assert status["phase"] == "Successful" and len(status["metricResults"][0]["measurements"]) == 1  # one-shot


def test_args_interval_from_arg_invalid() -> None:
    t = template([prom("m", interval="{{args.i}}")], args=[{"name": "i", "value": "5 minutes"}])
    assert analyzer.simulate(t, {"m": [OK]})["message"] == (
        'Analysis spec invalid: metrics[0]: invalid interval string: time: unknown unit " minutes" in duration '
        '"5 minutes"')


def test_args_supplied_override_and_undeclared_dropped() -> None:
    t = template([prom("m", successCondition="result[0] >= {{args.t}}")], args=[{"name": "t", "value": "0.999"}])
    assert analyzer.simulate(t, {"m": [OK]})["phase"] == "Failed"
    assert analyzer.simulate(t, {"m": [OK]}, args={"t": "0.9", "other": "x"})["phase"] == "Successful"


# --------------------------------------------------------------------------------------------
# Whole runs in the conformance format

CASES: list[dict[str, Any]] = [
    # ---- counts, limits, the truth table -------------------------------------------------
    dict(id="interval-without-count-runs-on", metrics=[prom("m", successCondition=SC, interval="60s")],
         measurements={"m": [OK, OK, OK]},
         expect=dict(run_phase="Running", run_message="", metrics={"m": dict(
             phase="Running", taken=3, waits=["1m", "1m"])}),
         source="TestReconcileAnalysisRunInitial (interval, no count => Running)"),
    dict(id="count-zero-no-interval-one-shot", metrics=[prom("m", successCondition=SC, count=0)],
         measurements={"m": [OK, OK]},
         expect=dict(run_phase="Successful", metrics={"m": dict(phase="Successful", taken=1)}),
         source="TestReconcileAnalysisRunInitial; Metric.EffectiveCount"),
    dict(id="no-count-failure-limit-forgives", metrics=[prom("m", successCondition=SC, failureLimit=2)],
         measurements={"m": [BAD, OK]},
         expect=dict(run_phase="Successful", run_message="", metrics={"m": dict(
             phase="Successful", taken=1, counters=dict(count=1, failed=1, successful=0))},
             runSummary=summary(count=1, successful=1)),
         source="assessMetricStatus: count reached, failures within limit => Successful"),
    dict(id="failure-limit-zero-first-failure", metrics=[prom("m", successCondition=SC, interval="1m", count=3)],
         measurements={"m": [OK, BAD, OK]},
         expect=dict(run_phase="Failed", run_message='Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
                     metrics={"m": dict(phase="Failed", taken=2, phases=["Successful", "Failed"], message="")}),
         source="assessMetricFailureInconclusiveOrError"),
    dict(id="failure-limit-minus-one-needs-csl-count-reached", metrics=[
        prom("m", successCondition=SC, interval="1m", count=3, failureLimit=-1, consecutiveSuccessLimit=2)],
         measurements={"m": [OK, BAD, OK]},
         expect=dict(run_phase="Failed", run_message="", metrics={"m": dict(
             phase="Failed", taken=3, counters=dict(count=3, failed=1, successful=2, consecutiveSuccess=1))},
             runSummary=summary(count=1, successful=1)),
         source="TestAssessMetricStatusConsecutiveSuccessLimit (count reached, CSL not met => Failed; tallied successful)"),
    dict(id="csl-and-failure-limit-count-reached-inconclusive", metrics=[
        prom("m", successCondition=SC, interval="1m", count=3, failureLimit=1, consecutiveSuccessLimit=2)],
         measurements={"m": [OK, BAD, OK, OK]},
         expect=dict(run_phase="Inconclusive", run_message="", metrics={"m": dict(
             phase="Inconclusive", taken=3, counters=dict(count=3, failed=1, successful=2, consecutiveSuccess=1))},
             runSummary=summary(count=1, successful=1)),
         source="TestAssessMetricStatusFailureLimitAndConsecutiveSuccessLimit (count reached => Inconclusive)"),
    dict(id="csl-default-failure-limit-still-applies", metrics=[
        prom("m", successCondition=SC, interval="1m", consecutiveSuccessLimit=2)],
         measurements={"m": [OK, BAD, OK, OK]},
         expect=dict(run_phase="Failed", run_message='Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
                     metrics={"m": dict(phase="Failed", taken=2)}),
         source="assessMetricFailureInconclusiveOrError (failureLimit defaults to 0)"),
    dict(id="csl-indefinite-failures-ignored", metrics=[
        prom("m", successCondition=SC, interval="1m", failureLimit=-1, consecutiveSuccessLimit=2)],
         measurements={"m": [BAD, BAD, BAD, OK, BAD, OK, OK, OK]},
         expect=dict(run_phase="Successful", metrics={"m": dict(
             phase="Successful", taken=7, counters=dict(failed=4, successful=3, consecutiveSuccess=2))}),
         source="TestAssessMetricStatusConsecutiveSuccessLimit"),
    dict(id="csl-reset-by-error", metrics=[prom("m", successCondition=SC, interval="1m", consecutiveSuccessLimit=2)],
         measurements={"m": [OK, err(), OK, OK]},
         expect=dict(run_phase="Successful", metrics={"m": dict(
             phase="Successful", taken=4, waits=["1m", "10s", "1m"],
             counters=dict(count=3, error=1, consecutiveSuccess=2, consecutiveError=0))}),
         source="runMeasurements: an Error resets consecutiveSuccess"),
    dict(id="inconclusive-limit-not-consecutive", metrics=[
        prom("m", successCondition="result[0] >= 0.9", failureCondition="result[0] < 0.5", interval="1m",
             inconclusiveLimit=1)],
         measurements={"m": [{"value": [0.7]}, OK, OK, {"value": [0.6]}, OK]},
         expect=dict(run_phase="Inconclusive",
                     run_message='Metric "m" assessed Inconclusive due to inconclusive (2) > inconclusiveLimit (1)',
                     metrics={"m": dict(phase="Inconclusive", taken=4,
                                        phases=["Inconclusive", "Successful", "Successful", "Inconclusive"])}),
         source="TestAssessMetricStatusInconclusiveLimit"),
    dict(id="failure-beats-success-when-both-true", metrics=[
        prom("m", successCondition="result[0] > 0", failureCondition="result[0] > 0.5")],
         measurements={"m": [OK]},
         expect=dict(run_phase="Failed", metrics={"m": dict(phase="Failed", phases=["Failed"])}),
         source="TestEvaluateResultWithFailure"),
    dict(id="no-conditions-always-successful", metrics=[prom("m", interval="1m", count=2)],
         measurements={"m": [{"value": []}, {"value": ["NaN"]}]},
         expect=dict(run_phase="Successful", metrics={"m": dict(
             phase="Successful", phases=["Successful", "Successful"])}),
         source="TestEvaluateResultNoFailureConditionAndNoSuccessCondition"),
    dict(id="nan-only-success-condition-fails", metrics=[prom("m", successCondition="result[0] >= 0.9")],
         measurements={"m": [{"value": ["NaN"]}]},
         expect=dict(run_phase="Failed", metrics={"m": dict(phase="Failed")}),
         source="EvaluateResult: success false, no failure condition => Failed"),
    # ---- errors and retries --------------------------------------------------------------
    dict(id="error-retry-ignores-interval", metrics=[prom("m", successCondition=SC, interval="5m", count=2)],
         measurements={"m": [err("connection refused"), OK, OK]},
         expect=dict(run_phase="Successful", metrics={"m": dict(
             phase="Successful", taken=3, waits=["10s", "5m"], phases=["Error", "Successful", "Successful"],
             messages=["connection refused", "", ""], counters=dict(count=2, error=1, consecutiveError=0))}),
         source="TestGenerateMetricTasksError / TestCalculateNextReconcileUponError"),
    dict(id="error-retry-one-shot", metrics=[prom("m", successCondition=SC)],
         measurements={"m": [err(), err(), OK, OK]},
         expect=dict(run_phase="Successful", run_message="", metrics={"m": dict(
             phase="Successful", taken=3, waits=["10s", "10s"], message="",
             counters=dict(count=1, successful=1, error=2, consecutiveError=0))}),
         source="generateMetricTasks: DefaultErrorRetryInterval when no interval"),
    dict(id="errors-default-limit-fifth", metrics=[prom("m", successCondition=SC, interval="1m")],
         measurements={"m": [err("e1"), err("e2"), err("e3"), err("e4"), err("e5"), OK]},
         expect=dict(run_phase="Error",
                     run_message='Metric "m" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): '
                                 '"Error Message: e5"',
                     metrics={"m": dict(phase="Error", taken=5, message="e5", waits=["10s"] * 4,
                                        counters=dict(count=0, error=5, consecutiveError=5))},
                     runSummary=summary(count=1, error=1)),
         source="TestAssessMetricStatusConsecutiveErrors (default consecutiveErrorLimit 4)"),
    dict(id="errors-four-then-list-ends", metrics=[prom("m", successCondition=SC, interval="1m")],
         measurements={"m": [err(), err(), err(), err()]},
         expect=dict(run_phase="Running", run_message="", metrics={"m": dict(phase="Running", taken=4)}),
         source="assessMetricFailureInconclusiveOrError: 4 > 4 is false"),
    dict(id="error-limit-zero-string", metrics=[prom("m", successCondition=SC, consecutiveErrorLimit="0")],
         measurements={"m": [err("x")]},
         expect=dict(run_phase="Error",
                     run_message='Metric "m" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): '
                                 '"Error Message: x"'),
         source="GetConsecutiveErrorLimitOrDefault: a present limit is used as given"),
    dict(id="error-limit-unparsable-is-zero", metrics=[prom("m", successCondition=SC, consecutiveErrorLimit="abc")],
         measurements={"m": [err("x")]},
         expect=dict(run_phase="Error",
                     run_message='Metric "m" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): '
                                 '"Error Message: x"'),
         source="defaults.GetConsecutiveErrorLimitOrDefault + intstr.IntValue"),
    # ---- evaluation error messages ---------------------------------------------------------
    dict(id="empty-vector-unguarded-no-data", metrics=[prom("m", successCondition=SC, consecutiveErrorLimit=0)],
         measurements={"m": [{"value": []}]},
         expect=dict(run_phase="Error",
                     run_message='Metric "m" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): '
                                 f'"Error Message: could not evaluate successCondition "{SC}": {NO_DATA}"',
                     metrics={"m": dict(messages=[f'could not evaluate successCondition "{SC}": {NO_DATA}'],
                                        values=[""])}),
         source="TestEvaluateResultErrorMessageWithEmptySlice"),
    dict(id="failure-condition-error-after-success", metrics=[
        prom("m", successCondition="len(result) == 0", failureCondition="result[0] > 1", consecutiveErrorLimit=0)],
         measurements={"m": [{"value": []}]},
         expect=dict(run_phase="Error", metrics={"m": dict(
             messages=[f'could not evaluate failureCondition "result[0] > 1": {NO_DATA}'])}),
         source="TestEvaluateResultErrorMessageOnFailureCondition; formatEvalError"),
    dict(id="nil-result-no-data", metrics=[web("m", successCondition="result > 1", consecutiveErrorLimit=0)],
         measurements={"m": [{"value": None}]},
         expect=dict(run_phase="Error", metrics={"m": dict(
             messages=[f'could not evaluate successCondition "result > 1": {NO_DATA}'])}),
         source="TestEvaluateResultErrorMessageWithNilResult"),
    dict(id="guarded-empty-vector", metrics=[prom("m", successCondition="len(result) == 0 || result[0] >= 0.95")],
         measurements={"m": [{"value": []}]},
         expect=dict(run_phase="Successful", metrics={"m": dict(values=["[]"])}),
         source="docs/features/analysis.md 'Empty array'"),
    # ---- web -------------------------------------------------------------------------------
    dict(id="web-non-json-success", metrics=[web("m", successCondition='result == "OK"')],
         measurements={"m": [{"value": "OK"}]},
         expect=dict(run_phase="Successful", metrics={"m": dict(values=["OK"])}),
         source="webmetric_test.go (non-JSON body evaluated, v1.10+)"),
    dict(id="web-empty-body", metrics=[web("m", successCondition='result == ""')],
         measurements={"m": [{"value": ""}]},
         expect=dict(run_phase="Successful", metrics={"m": dict(values=[""])}),
         source="webmetric.go: empty body is the string \"\""),
    dict(id="web-json-value-string", metrics=[web("m", successCondition='asFloat(result.v) > 1')],
         measurements={"m": [{"value": {"v": "1.5", "a": [1, 2]}}]},
         expect=dict(run_phase="Successful", metrics={"m": dict(values=['{"a":[1,2],"v":"1.5"}'])}),
         source="webmetric.go: value is JSON with sorted keys"),
    # ---- terminate -------------------------------------------------------------------------
    dict(id="terminate-failures-within-limit", metrics=[
        prom("m", successCondition=SC, interval="1m", failureLimit=2)],
         measurements={"m": [BAD, BAD, OK]}, terminate_after=2,
         expect=dict(run_phase="Successful", run_message="Run Terminated", metrics={"m": dict(
             phase="Successful", taken=2, message="", counters=dict(failed=2, count=2))},
             runSummary=summary(count=1, successful=1)),
         source="assessMetricStatus (terminating => Successful within limits)"),
    dict(id="terminate-before-anything", metrics=[prom("m", successCondition=SC, interval="1m")],
         measurements={"m": [OK]}, terminate_after=0,
         expect=dict(run_phase="Successful", run_message="Run Terminated", metrics={"m": dict(phase=None, taken=0)},
                     runSummary=summary(count=1)),
         source="assessRunStatus: terminating with no measurement => Successful"),
    dict(id="terminate-csl-not-required", metrics=[
        prom("m", successCondition=SC, interval="1m", failureLimit=-1, consecutiveSuccessLimit=3)],
         measurements={"m": [OK, BAD, OK]}, terminate_after=2,
         expect=dict(run_phase="Successful", run_message="Run Terminated", metrics={"m": dict(phase="Successful", taken=2)}),
         source="TestAssessMetricStatusConsecutiveSuccessLimit (terminating => Successful)"),
    dict(id="terminate-message-replaced-by-failure", metrics=[
        prom("a", successCondition=SC, interval="1m", count=3), prom("b", successCondition=SC, interval="1m")],
         measurements={"a": [OK, BAD, OK], "b": [OK, OK, OK]}, terminate_after=2,
         expect=dict(run_phase="Failed", run_message='Metric "a" assessed Failed due to failed (1) > failureLimit (0)',
                     metrics={"a": dict(phase="Failed", taken=2), "b": dict(phase="Successful", taken=2)}),
         source="assessRunStatus: a limit reason replaces 'Run Terminated'"),
    dict(id="terminate-after-lists-run-out", metrics=[prom("m", successCondition=SC, interval="1m")],
         measurements={"m": [OK, OK]}, terminate_after=5,
         expect=dict(run_phase="Successful", run_message="Run Terminated",
                     metrics={"m": dict(phase="Successful", taken=2)}),
         source="simulate: empty rounds still count towards terminate_after"),
    dict(id="terminate-initial-delay-never-started", metrics=[
        prom("a", successCondition=SC, interval="1m"), prom("b", successCondition=SC, initialDelay="5m")],
         measurements={"a": [OK, OK, OK], "b": [OK]}, terminate_after=1,
         expect=dict(run_phase="Successful", run_message="Run Terminated",
                     metrics={"a": dict(phase="Successful", taken=1), "b": dict(phase=None, taken=0)},
                     runSummary=summary(count=2, successful=1)),
         source="TestTerminateAnalysisRun"),
    # ---- initialDelay ------------------------------------------------------------------------
    dict(id="initial-delay-not-started-when-sibling-fails", metrics=[
        prom("a", successCondition=SC), prom("b", successCondition=SC, initialDelay="1m")],
         measurements={"a": [BAD], "b": [OK]},
         expect=dict(run_phase="Failed", run_message='Metric "a" assessed Failed due to failed (1) > failureLimit (0)',
                     metrics={"a": dict(phase="Failed", taken=1), "b": dict(phase=None, taken=0)},
                     runSummary=summary(count=2, failed=1)),
         source="generateMetricTasks (terminating: no new measurement); assessRunStatus skips results-less metrics"),
    dict(id="initial-delay-joins-after-delay", metrics=[
        prom("a", successCondition=SC, interval="1m", count=2), prom("b", successCondition=SC, initialDelay="30s")],
         measurements={"a": [OK, OK], "b": [OK]},
         expect=dict(run_phase="Successful", run_message="",
                     metrics={"a": dict(phase="Successful", taken=2, waits=["1m"]),
                              "b": dict(phase="Successful", taken=1, started=["2024-01-01T00:00:30Z"])}),
         source="TestGenerateMetricTasksHonorInitialDelay / TestCalculateNextReconcileTimeInitialDelay"),
    dict(id="initial-delay-waiting-keeps-run-running", metrics=[
        prom("a", successCondition=SC), prom("b", successCondition=SC, initialDelay="1m")],
         measurements={"a": [OK], "b": []},
         expect=dict(run_phase="Running", run_message="",
                     metrics={"a": dict(phase="Successful", taken=1), "b": dict(phase=None, taken=0)}),
         source="assessRunStatus: a metric without result keeps the run Running"),
    # ---- retention ---------------------------------------------------------------------------
    dict(id="retention-default-ten", metrics=[prom("m", successCondition=SC, interval="10s", count=12)],
         measurements={"m": [OK] * 12},
         expect=dict(run_phase="Successful", metrics={"m": dict(
             taken=10, counters=dict(count=12, successful=12, consecutiveSuccess=12))}),
         source="DefaultMeasurementHistoryLimit = 10"),
    dict(id="retention-rule-limit", metrics=[prom("m", successCondition=SC, interval="10s", count=5)],
         measurementRetention=[{"metricName": "^m$", "limit": 2}], measurements={"m": [OK] * 5},
         expect=dict(run_phase="Successful", metrics={"m": dict(taken=2, counters=dict(count=5))}),
         source="TestTrimMeasurementHistory"),
    dict(id="retention-rule-above-default", metrics=[prom("m", successCondition=SC, interval="10s", count=15)],
         measurementRetention=[{"metricName": "m", "limit": 20}], measurements={"m": [OK] * 15},
         expect=dict(run_phase="Successful", metrics={"m": dict(taken=15)}),
         source="garbageCollectMeasurements: a rule's limit replaces the default"),
    dict(id="retention-last-matching-rule", metrics=[prom("m1", successCondition=SC, interval="10s", count=6)],
         measurementRetention=[{"metricName": "m", "limit": 2}, {"metricName": "m1", "limit": 4}],
         measurements={"m1": [OK] * 6},
         expect=dict(run_phase="Successful", metrics={"m1": dict(taken=4)}),
         source="GetMeasurementRetentionMetrics: later rules overwrite the map entry"),
    dict(id="retention-unmatched-rule", metrics=[prom("m", successCondition=SC)],
         measurementRetention=[{"metricName": "^x$", "limit": 2}], measurements={"m": [OK]},
         expect=dict(run_phase="Error",
                     run_message="Analysis spec invalid: measurementRetention[0]: Rule didn't match any metric name(s)",
                     metrics={"m": dict(phase=None, taken=0)}),
         source="TestInvalidMeasurementsRetentionConfigThrowsError"),
    # ---- dry run -----------------------------------------------------------------------------
    dict(id="dryrun-regex-unanchored", metrics=[
        prom("success-rate", successCondition=SC), prom("error-rate", successCondition=SC),
        prom("latency", successCondition=SC)],
         dryRun=[{"metricName": "rate"}], measurements={"success-rate": [BAD], "error-rate": [BAD], "latency": [OK]},
         expect=dict(run_phase="Successful", run_message="", metrics={
             "success-rate": dict(phase="Failed", message="Metric assessed Failed due to failed (1) > failureLimit (0)"),
             "error-rate": dict(phase="Failed", message="Metric assessed Failed due to failed (1) > failureLimit (0)"),
             "latency": dict(phase="Successful")},
             runSummary=summary(count=1, successful=1), dryRunSummary=summary(count=2, failed=2)),
         source="GetDryRunMetrics (regexp.MatchString); TestAssessRunStatusMultipleFailuresInDryRunMode"),
    dict(id="dryrun-error-message-not-appended", metrics=[
        prom("a", successCondition=SC, consecutiveErrorLimit=0), prom("b", successCondition=SC)],
         dryRun=[{"metricName": "^a$"}], measurements={"a": [err("boom")], "b": [OK]},
         expect=dict(run_phase="Successful", run_message="", metrics={
             "a": dict(phase="Error", message="Metric assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0)",
                       messages=["boom"]),
             "b": dict(phase="Successful")},
             runSummary=summary(count=1, successful=1), dryRunSummary=summary(count=1, error=1)),
         source="TestAssessRunStatusErrorMessageFromProviderInDryRunMode"),
    dict(id="dryrun-failure-does-not-stop-siblings", metrics=[
        prom("a", successCondition=SC), prom("b", successCondition=SC, interval="10s")],
         dryRun=[{"metricName": "a"}], measurements={"a": [BAD], "b": [OK, OK, OK]},
         expect=dict(run_phase="Running", run_message="", metrics={
             "a": dict(phase="Failed"), "b": dict(phase="Running", taken=3)}),
         source="IsTerminating skips dry-run results"),
    dict(id="dryrun-all-metrics-regex", metrics=[prom("a", successCondition=SC), prom("b", successCondition=SC)],
         dryRun=[{"metricName": ".*"}], measurements={"a": [OK], "b": [BAD]},
         expect=dict(run_phase="Successful", run_message="", runSummary=summary(),
                     dryRunSummary=summary(count=2, successful=1, failed=1)),
         source="TestAssessRunStatusWithOnlyDryRunMetrics"),
    dict(id="dryrun-star-invalid", metrics=[prom("a", successCondition=SC)], dryRun=[{"metricName": "*"}],
         measurements={"a": [OK]},
         expect=dict(run_phase="Error", run_message="Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)"),
         source="GetDryRunMetrics (invalid regexp never matches)"),
    dict(id="dryrun-terminate-summary", metrics=[prom("a", successCondition=SC, interval="1m")],
         dryRun=[{"metricName": "a"}], measurements={"a": [OK, OK]}, terminate_after=1,
         expect=dict(run_phase="Successful", run_message="Run Terminated", runSummary=summary(),
                     dryRunSummary=summary(count=1, successful=1)),
         source="TestTerminateAnalysisRunInDryRunMode"),
    # ---- several metrics -------------------------------------------------------------------
    dict(id="multi-worst-phase-failed", metrics=[
        prom("a", successCondition="result[0] > 0.9", failureCondition="result[0] < 0.5"),
        prom("b", successCondition=SC, consecutiveErrorLimit=0), prom("c", successCondition=SC)],
         measurements={"a": [{"value": [0.7]}], "b": [err("x")], "c": [BAD]},
         expect=dict(run_phase="Failed", run_message='Metric "c" assessed Failed due to failed (1) > failureLimit (0)',
                     runSummary=summary(count=3, failed=1, inconclusive=1, error=1)),
         source="utils/analysis/helpers.go IsWorse; TestIsWorst"),
    dict(id="multi-tie-first-in-spec-order", metrics=[prom("a", successCondition=SC), prom("b", successCondition=SC)],
         measurements={"a": [BAD], "b": [BAD]},
         expect=dict(run_phase="Failed", run_message='Metric "a" assessed Failed due to failed (1) > failureLimit (0)',
                     runSummary=summary(count=2, failed=2)),
         source="TestAssessRunStatusMultipleFailures"),
    dict(id="multi-error-first-beats-later-inconclusive", metrics=[
        prom("a", successCondition=SC, consecutiveErrorLimit=0),
        prom("b", successCondition="result[0] > 0.9", failureCondition="result[0] < 0.5")],
         measurements={"a": [err("e")], "b": [{"value": [0.7]}]},
         expect=dict(run_phase="Error",
                     run_message='Metric "a" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): '
                                 '"Error Message: e"'),
         source="IsWorse: Inconclusive is not worse than Error"),
    dict(id="multi-worse-without-reason-keeps-message", metrics=[
        prom("a", successCondition="result[0] > 0.5", failureCondition="result[0] < 0.1"),
        prom("b", successCondition=SC, count=1, failureLimit=-1, consecutiveSuccessLimit=1)],
         measurements={"a": [{"value": [0.3]}], "b": [{"value": [0.3]}]},
         expect=dict(run_phase="Failed",
                     run_message='Metric "a" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)',
                     metrics={"a": dict(phase="Inconclusive"), "b": dict(phase="Failed")},
                     runSummary=summary(count=2, successful=1, inconclusive=1)),
         source="assessRunStatus: worstMessage changes only with a limit reason (code reading)"),
    dict(id="multi-fail-fast-stops-sibling", metrics=[
        prom("a", successCondition=SC, interval="1m", count=3), prom("b", successCondition=SC, interval="1m")],
         measurements={"a": [OK, BAD, OK], "b": [OK] * 5},
         expect=dict(run_phase="Failed", metrics={"a": dict(phase="Failed", taken=2),
                                                  "b": dict(phase="Successful", taken=2, waits=["1m"])},
                     runSummary=summary(count=2, successful=1, failed=1)),
         source="TestReconcileAnalysisRunTerminateSiblingAfterFail; TestGenerateMetricTasksFailing"),
    dict(id="multi-inconclusive-stops-sibling", metrics=[
        prom("a", successCondition="result[0] > 0.9", failureCondition="result[0] < 0.5"),
        prom("b", successCondition=SC, interval="1m")],
         measurements={"a": [{"value": [0.7]}], "b": [OK] * 5},
         expect=dict(run_phase="Inconclusive",
                     run_message='Metric "a" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)',
                     metrics={"b": dict(phase="Successful", taken=1)}),
         source="IsTerminating (Inconclusive)"),
    dict(id="multi-sibling-without-outcomes", metrics=[prom("a", successCondition=SC), prom("b", successCondition=SC)],
         measurements={"a": [OK]},
         expect=dict(run_phase="Running", run_message="", metrics={"a": dict(phase="Successful"), "b": dict(phase=None)}),
         source="assessRunStatus"),
    dict(id="multi-errors-retry-in-step", metrics=[
        prom("a", successCondition=SC, interval="1m", consecutiveErrorLimit=1),
        prom("b", successCondition=SC, interval="1m")],
         measurements={"a": [err("boom"), err("boom"), OK], "b": [OK] * 5},
         expect=dict(run_phase="Error",
                     run_message='Metric "a" assessed Error due to consecutiveErrors (2) > consecutiveErrorLimit (1): '
                                 '"Error Message: boom"',
                     metrics={"a": dict(phase="Error", taken=2, waits=["10s"]),
                              "b": dict(phase="Successful", taken=2, waits=["1m"])}),
         source="simulate's rounds: each round every due metric measures once (error retried next round)"),
    dict(id="multi-one-shot-error-retried-in-step", metrics=[
        prom("a", successCondition=SC, consecutiveErrorLimit=1), prom("b", successCondition=SC, interval="1m")],
         measurements={"a": [err("boom"), err("boom")], "b": [OK] * 5},
         expect=dict(run_phase="Error", metrics={"a": dict(phase="Error", taken=2, waits=["10s"]),
                                                 "b": dict(phase="Successful", taken=2, waits=["1m"])}),
         source="simulate's rounds (tick model: errors retried on the next round)"),
    dict(id="multi-different-intervals-follow-clock", metrics=[
        prom("a", successCondition=SC, interval="10s", count=3), prom("b", successCondition=SC, interval="1m")],
         measurements={"a": [OK, OK, BAD], "b": [OK] * 3},
         expect=dict(run_phase="Failed", run_message='Metric "a" assessed Failed due to failed (1) > failureLimit (0)',
                     metrics={"a": dict(phase="Failed", taken=3, waits=["10s", "10s"]),
                              "b": dict(phase="Successful", taken=1)}),
         source="generateMetricTasks per-metric intervals; IsTerminating stops b at 20s"),
]


def _case_results(case: Mapping[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name, outs in case["measurements"].items():
        out[name] = [dict(o) for o in outs]
    return out


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_run_case(case: dict[str, Any]) -> None:
    extra = {k: case[k] for k in ("dryRun", "measurementRetention", "args") if k in case}
    status = analyzer.simulate(template(case["metrics"], **extra), _case_results(case),
                               terminate_after=case.get("terminate_after"))
    exp = case["expect"]
    assert status["phase"] == exp["run_phase"]
    if "run_message" in exp:
        assert status["message"] == exp["run_message"]
    for key in ("runSummary", "dryRunSummary"):
        if key in exp:
            assert status[key] == exp[key], key
    results = results_by_name(status)
    for name, mexp in exp.get("metrics", {}).items():
        mr = results.get(name)
        if "phase" in mexp:
            assert (mr["phase"] if mr else None) == mexp["phase"], name
        if "taken" in mexp:
            assert (len(mr["measurements"]) if mr else 0) == mexp["taken"], name
        if "phases" in mexp:
            assert [m["phase"] for m in mr["measurements"]] == mexp["phases"], name
        if "messages" in mexp:
            assert [m["message"] for m in mr["measurements"]] == mexp["messages"], name
        if "values" in mexp:
            assert [m["value"] for m in mr["measurements"]] == mexp["values"], name
        if "message" in mexp:
            assert mr["message"] == mexp["message"], name
        if "counters" in mexp:
            assert {k: mr[k] for k in mexp["counters"]} == mexp["counters"], name
        if "waits" in mexp:
            assert waits(mr) == mexp["waits"], name
        if "started" in mexp:
            assert [m["startedAt"] for m in mr["measurements"]] == mexp["started"], name


# --------------------------------------------------------------------------------------------
# evaluation messages and values that need a looser check (expression error texts vary)


def test_evaluation_error_on_non_empty_result_keeps_expr_error() -> None:
    # formatEvalError: the real error when the result is neither nil nor an empty slice
    for value, cond in (([1.0], "result > 1"), ({}, "result.a.b == 1")):
        status = sim([prom("m", successCondition=cond, consecutiveErrorLimit=0)], {"m": [{"value": value}]})
        msg = status["metricResults"][0]["measurements"][0]["message"]
        assert msg.startswith(f'could not evaluate successCondition "{cond}": '), msg
        assert NO_DATA not in msg
        assert status["metricResults"][0]["measurements"][0]["value"] == ""


def test_status_json_shape() -> None:
    status = sim([prom("m", successCondition=SC)], {"m": [OK]})
    assert set(status) == {"phase", "message", "metricResults", "startedAt", "completedAt", "runSummary",
                           "dryRunSummary"}
    assert status["startedAt"] == status["completedAt"] == "2024-01-01T00:00:00Z"
    mr = status["metricResults"][0]
    assert mr["dryRun"] is False and mr["metadata"] == {"ResolvedPrometheusQuery": "q"}
    assert mr["measurements"][0]["value"] == "[0.99]"


def test_spec_terminate_in_template() -> None:
    status = sim([prom("m", successCondition=SC)], {"m": [OK]}, terminate=True)
    assert (status["phase"], status["message"], status["metricResults"]) == ("Successful", "Run Terminated", [])


def test_unknown_result_lists_stop_measuring() -> None:
    # a metric with no scripted outcomes never starts; the others carry on
    status = sim([prom("a", successCondition=SC, interval="1m", count=2), prom("b", successCondition=SC)],
                 {"a": [OK, OK]})
    assert status["phase"] == "Running"
    assert [r["name"] for r in status["metricResults"]] == ["a"]
