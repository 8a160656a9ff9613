"""The step engine (analyzer.core.steps): Argo canary semantics, capacity gate, abort/retry/promote,
idempotent decisions. Driven through a tiny in-memory router that reads back what it was given."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crd_validation import MODELROLLOUT_CRD, assert_valid

from analyzer.core.model import Phase
from analyzer.core.steps import (
    CAPACITY_POLL,
    CapacityFacts,
    CapacityPolicy,
    Decision,
    EnsureAnalysisRun,
    Facts,
    PauseReason,
    Requests,
    RolloutPhase,
    RolloutSpec,
    RolloutStatus,
    ScaleCanary,
    TerminateAnalysisRun,
    TrafficObservation,
    TrafficState,
    Verdict,
    decide,
    record_traffic,
    required_canary_replicas,
)
from analyzer.rollout.spec import load_rollout, parse_rollout
from analyzer.rollout.status import status_from_json, status_to_json

SEED = Path(__file__).resolve().parent / "data" / "seed-manifests"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def model_rollout(steps: list[dict], **spec_extra: object) -> RolloutSpec:
    doc = {
        "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
        "metadata": {"name": "inference", "namespace": "ml", "generation": 1},
        "spec": {"stable": {"host": "inference-v1"}, "canary": {"host": "inference-v2"},
                 "trafficRouting": {"istio": {"virtualServices": [{"name": "inference-routing"}]}},
                 "steps": steps, **spec_extra},
    }
    assert_valid(doc, MODELROLLOUT_CRD)
    spec, _ = parse_rollout(doc)
    return spec


SEED_STEPS = [
    {"setWeight": 5}, {"pause": {"duration": "10m"}}, {"analysis": {"templates": [{"templateName": "success-rate"}]}},
    {"setWeight": 25}, {"pause": {"duration": "10m"}}, {"analysis": {"templates": [{"templateName": "latency-check"}]}},
    {"setWeight": 50}, {"pause": {"duration": "15m"}}, {"setWeight": 100},
]


class Sim:
    """decide -> router (reads back exactly what it was asked, unless told otherwise) -> record."""

    def __init__(self, spec: RolloutSpec, *, capacity: CapacityFacts | None = None) -> None:
        self.spec = spec
        self.status = RolloutStatus()
        self.now = T0
        self.capacity = capacity
        self.verdicts: dict[str, Verdict] = {}
        self.router_weight: int | None = None
        self.router_routes: frozenset[str] = frozenset()
        self.router_frozen = False  # a router that does not take writes (e.g. the objects are broken)
        self.decisions: list[Decision] = []
        self.events: list[str] = []
        self.ensured: set[str] = set()
        self.terminated: set[str] = set()
        self.scaled: list[int] = []

    def apply(self, traffic: TrafficState) -> TrafficObservation:
        if not self.router_frozen:
            self.router_weight = traffic.weight
            self.router_routes = traffic.route_names()
        return TrafficObservation(self.router_weight, self.router_routes)

    def step(self) -> Decision:
        d = decide(self.spec, self.status, Facts(dict(self.verdicts), self.capacity), self.now)
        obs = self.apply(d.traffic)
        self.status = record_traffic(d.status, obs, self.now)
        # The status survives a round trip through its JSON form (all progress lives in .status).
        assert status_to_json(status_from_json(status_to_json(self.status))) == status_to_json(self.status)
        self.decisions.append(d)
        self.events += [f"{e.reason}: {e.message}" for e in d.events]
        for a in d.actions:
            if isinstance(a, EnsureAnalysisRun):
                self.ensured.add(a.name)
            elif isinstance(a, TerminateAnalysisRun):
                self.terminated.add(a.name)
            elif isinstance(a, ScaleCanary):
                self.scaled.append(a.replicas)
        return d

    def run(self, until=None, max_passes: int = 200, advance_time: bool = True) -> Decision:
        """Pass after pass (time jumps to each requeue) until ``until(sim)`` or nothing is due."""
        d = self.step()
        for _ in range(max_passes):
            if until is not None and until(self):
                return d
            if d.requeue_after is None:
                return d
            if d.requeue_after > 0:
                if not advance_time:
                    return d
                self.now += timedelta(seconds=d.requeue_after)
            d = self.step()
        raise AssertionError("did not settle")

    def pass_analyses(self, phase: Phase = Phase.SUCCESSFUL, message: str = "") -> None:
        for name in self.ensured:
            if self.status.run(name) is not None and not self.status.run(name).completed:
                self.verdicts[name] = Verdict(phase, message)

    def request(self, **kw: str) -> None:
        self.spec = dataclasses.replace(self.spec, requests=dataclasses.replace(self.spec.requests, **kw))


def weights_per_step(sim: Sim) -> list[tuple[int, int]]:
    """(step index completed, canary weight at that moment), running analyses as Successful."""
    out = []
    last = sim.status.current_step_index
    for _ in range(500):
        weight_before = sim.status.verified_weight
        d = sim.step()
        sim.pass_analyses()
        idx = sim.status.current_step_index
        if last is not None and idx is not None and idx > last:
            out.append((last, weight_before))
        last = idx
        if sim.status.promoted:
            return out
        if d.requeue_after:
            sim.now += timedelta(seconds=d.requeue_after)
        elif d.requeue_after is None:
            raise AssertionError(f"stuck: {sim.status.message}")
    raise AssertionError("did not finish")


# --------------------------------------------------------------------------- the seed's steps


def test_seed_steps_weights_and_timing():
    spec, _ = load_rollout(SEED / "05-argo-rollout-canary.yaml")
    sim = Sim(spec)
    sim.step()  # starts the update, asks for 5 %
    assert sim.status.desired_weight == 5 and sim.status.verified_weight == 5
    seen = weights_per_step(sim)
    assert [w for _, w in seen] == [5, 5, 5, 25, 25, 25, 50, 50, 100]
    assert [i for i, _ in seen] == list(range(9))
    assert sim.status.phase is RolloutPhase.HEALTHY and sim.status.promoted
    # three pauses: 10m + 10m + 15m of virtual time, plus a few seconds of router read-backs
    elapsed = (sim.now - T0).total_seconds()
    assert 35 * 60 <= elapsed < 35 * 60 + 60
    assert any("RolloutCompleted" in e for e in sim.events)


def test_timed_pause_waits_its_duration_and_requeues_for_it():
    sim = Sim(model_rollout([{"setWeight": 10}, {"pause": {"duration": 90}}, {"setWeight": 20}]))
    sim.run(until=lambda s: s.status.pause_conditions)
    assert sim.status.phase is RolloutPhase.PAUSED and sim.status.message.startswith("CanaryPauseStep")
    d = sim.decisions[-1]
    assert d.requeue_after == pytest.approx(90)
    sim.now += timedelta(seconds=89)
    assert sim.step().status.current_step_index == 1
    sim.now += timedelta(seconds=1)
    sim.step()
    assert sim.status.current_step_index == 2 and not sim.status.pause_conditions


def test_indefinite_pause_waits_for_a_person_then_promote_moves_on():
    sim = Sim(model_rollout([{"setWeight": 10}, {"pause": {}}, {"setWeight": 30}, {"pause": {}}]))
    d = sim.run()
    assert d.requeue_after is None and sim.status.current_step_index == 1
    assert sim.status.phase is RolloutPhase.PAUSED
    sim.now += timedelta(days=3)
    assert sim.step().status.current_step_index == 1  # still waiting, days later
    sim.request(promote="t1")
    sim.run()
    assert sim.status.current_step_index == 3 and sim.status.verified_weight == 30
    assert sim.status.handled_requests["promote"] == "t1"
    # the same token again does nothing
    idx = sim.status.current_step_index
    sim.step()
    assert sim.status.current_step_index == idx


def test_promote_ends_a_timed_pause_early():
    sim = Sim(model_rollout([{"setWeight": 10}, {"pause": {"duration": "1h"}}, {"setWeight": 30}]))
    sim.run(until=lambda s: s.status.pause_conditions)
    sim.request(promote="go")
    sim.step()
    assert sim.status.current_step_index == 2 and not sim.status.pause_conditions


def test_promote_skips_the_current_step_and_terminates_its_analysis():
    sim = Sim(model_rollout([{"setWeight": 10}, {"analysis": {"templates": [{"templateName": "t"}]}},
                             {"setWeight": 40}]))
    sim.run(until=lambda s: s.ensured)
    run = next(iter(sim.ensured))
    sim.request(promote="skip")
    sim.step()
    assert sim.status.current_step_index == 2
    assert run in sim.terminated
    sim.run(until=lambda s: s.status.verified_weight == 40)


def test_promote_full_goes_to_the_end_and_removes_managed_routes():
    steps = [{"setHeaderRoute": {"name": "pin", "match": [{"headerName": "x-v", "headerValue": {"exact": "2"}}]}},
             {"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]
    sim = Sim(model_rollout(steps))
    sim.run()
    assert sim.status.current_step_index == 2 and sim.router_routes == {"pin"}
    sim.request(promote_full="now")
    sim.run()
    assert sim.status.promoted and sim.status.phase is RolloutPhase.HEALTHY
    assert sim.router_weight == 100 and sim.router_routes == frozenset()


# --------------------------------------------------------------------------- analysis verdicts


ANALYSIS_STEPS = [{"setHeaderRoute": {"name": "pin", "match": [{"headerName": "x-v", "headerValue": {"exact": "2"}}]}},
                  {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                  {"setWeight": 60}]


@pytest.mark.parametrize("phase", [Phase.FAILED, Phase.ERROR])
def test_failed_or_error_analysis_aborts_within_one_decision(phase):
    sim = Sim(model_rollout(ANALYSIS_STEPS, analysis={"templates": [{"templateName": "bg"}], "startingStep": 1}))
    sim.run(until=lambda s: len(s.ensured) == 2)
    assert sim.router_weight == 20 and sim.router_routes == {"pin"}
    step_run = next(n for n in sim.ensured if not n.endswith("-bg"))
    bg_run = next(n for n in sim.ensured if n.endswith("-bg"))
    sim.verdicts[step_run] = Verdict(phase, "success rate 0.93 < 0.99")
    d = sim.step()  # one decision: abort, traffic to stable, managed routes gone
    assert d.traffic == TrafficState(0, managed=("pin",))
    assert sim.router_weight == 0 and sim.router_routes == frozenset()
    st = sim.status
    assert st.abort and st.phase is RolloutPhase.DEGRADED and st.current_step_index == 0
    assert st.message == f"RolloutAborted: Step-based analysis phase {phase.value.lower()}: success rate 0.93 < 0.99"
    assert st.condition("Progressing").status == "False" and st.condition("Progressing").reason == "RolloutAborted"
    assert bg_run in sim.terminated
    assert any(e.reason == "RolloutAborted" and e.warning for e in d.events)
    # nothing moves any more until a person acts
    assert sim.run().requeue_after is None and sim.router_weight == 0


def test_background_analysis_runs_from_its_starting_step_and_failure_aborts():
    sim = Sim(model_rollout([{"setWeight": 10}, {"pause": {}}, {"setWeight": 30}, {"pause": {}}],
                            analysis={"templates": [{"templateName": "bg"}], "startingStep": 2}))
    sim.run()
    assert sim.status.current_step_index == 1 and not sim.ensured  # before startingStep: no run
    sim.request(promote="1")
    sim.run()
    assert sim.status.current_step_index == 3 and len(sim.ensured) == 1
    bg = next(iter(sim.ensured))
    sim.verdicts[bg] = Verdict(Phase.FAILED, "p99 latency 2.4s > 1s")
    sim.step()
    assert sim.status.abort and "Background analysis phase failed: p99 latency" in sim.status.message


def test_successful_background_run_does_not_block():
    sim = Sim(model_rollout([{"setWeight": 10}, {"setWeight": 30}], analysis={"templates": [{"templateName": "bg"}]}))
    sim.step()
    sim.pass_analyses()
    sim.run()
    assert sim.status.promoted


def test_inconclusive_step_analysis_pauses_with_its_reason_then_promote_goes_on():
    sim = Sim(model_rollout(ANALYSIS_STEPS))
    sim.run(until=lambda s: s.ensured)
    run = next(iter(sim.ensured))
    sim.verdicts[run] = Verdict(Phase.INCONCLUSIVE, "no data: empty vector")
    d = sim.run()
    assert d.requeue_after is None
    st = sim.status
    assert st.phase is RolloutPhase.PAUSED and st.current_step_index == 2 and not st.abort
    assert st.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is not None
    assert "InconclusiveAnalysisRun" in st.message and "no data: empty vector" in st.message
    assert sim.router_weight == 20  # traffic stays where it was
    sim.request(promote="ok")
    sim.run()
    assert sim.status.promoted and sim.router_weight == 100


def test_inconclusive_then_abort_rolls_back():
    sim = Sim(model_rollout(ANALYSIS_STEPS))
    sim.run(until=lambda s: s.ensured)
    sim.verdicts[next(iter(sim.ensured))] = Verdict(Phase.INCONCLUSIVE, "no data")
    sim.run()
    sim.request(abort="stop")
    sim.step()
    assert sim.status.abort and sim.status.message == "RolloutAborted: aborted by request"
    assert sim.router_weight == 0 and not sim.status.pause_conditions


def test_inconclusive_background_run_pauses_and_promote_starts_a_new_one():
    sim = Sim(model_rollout([{"setWeight": 10}, {"setWeight": 20}, {"pause": {"duration": "1h"}}, {"setWeight": 90}],
                            analysis={"templates": [{"templateName": "bg"}]}))
    sim.run(until=lambda s: s.ensured)
    first = next(iter(sim.ensured))
    sim.verdicts[first] = Verdict(Phase.INCONCLUSIVE, "too few samples")
    sim.run(until=lambda s: s.status.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS))
    idx = sim.status.current_step_index
    sim.now += timedelta(hours=5)
    sim.step()
    assert sim.status.current_step_index == idx  # halted, even past any timer
    sim.request(promote="go")
    sim.step()
    second = {n for n in sim.ensured if n != first}
    assert second and next(iter(second)).endswith("-bg2")


# --------------------------------------------------------------------------- abort / retry


def test_abort_request_then_retry_starts_again_with_new_runs():
    sim = Sim(model_rollout(ANALYSIS_STEPS))
    sim.run(until=lambda s: s.ensured)
    first_run = next(iter(sim.ensured))
    sim.request(abort="a1")
    sim.step()
    assert sim.status.abort and sim.router_weight == 0 and first_run in sim.terminated
    sim.request(retry="r1")
    d = sim.step()
    assert not sim.status.abort and sim.status.attempt == 2 and sim.status.current_step_index == 0
    assert any(e.reason == "RolloutRetry" for e in d.events)
    sim.run(until=lambda s: len(s.ensured) == 2)
    second_run = next(n for n in sim.ensured if n != first_run)
    assert "-2-" in second_run and "-1-" in first_run
    assert sim.router_weight == 20 and sim.router_routes == {"pin"}
    sim.pass_analyses()
    sim.run()
    assert sim.status.promoted


def test_retry_and_promote_are_ignored_when_they_do_not_apply():
    sim = Sim(model_rollout([{"setWeight": 10}, {"pause": {}}]))
    sim.run()
    sim.request(retry="r")
    d = sim.step()
    assert any(e.reason == "RequestIgnored" for e in d.events) and sim.status.attempt == 1
    sim.request(abort="a")
    sim.step()
    sim.request(promote="p")
    d = sim.step()
    assert sim.status.abort and any("use retry" in e.message for e in d.events)


def test_requests_already_in_the_spec_at_first_sight_are_not_acted_on():
    spec = model_rollout([{"setWeight": 10}, {"pause": {}}], requests={"abort": "old", "promote": "old"})
    sim = Sim(spec)
    sim.run()
    assert not sim.status.abort and sim.status.current_step_index == 1


def test_new_update_restarts_at_step_zero_and_terminates_runs():
    sim = Sim(model_rollout(ANALYSIS_STEPS))
    sim.run(until=lambda s: s.ensured)
    old = next(iter(sim.ensured))
    sim.spec = model_rollout(ANALYSIS_STEPS[1:])  # the steps changed: a new update
    d = sim.step()
    assert old in sim.terminated and sim.status.current_step_index == 0
    assert any(e.reason == "RolloutUpdated" for e in d.events)
    assert sim.status.update_hash == sim.spec.update_hash


def test_manual_pause_freezes_progress_and_never_raises_the_weight():
    sim = Sim(model_rollout([{"setWeight": 10}, {"pause": {"duration": 60}}, {"setWeight": 50}]))
    sim.run(until=lambda s: s.status.pause_conditions)
    sim.spec = dataclasses.replace(sim.spec, paused=True)
    sim.now += timedelta(hours=1)
    sim.run()
    assert sim.status.current_step_index == 1 and sim.router_weight == 10
    assert sim.status.phase is RolloutPhase.PAUSED and sim.status.message == "manually paused"
    sim.spec = dataclasses.replace(sim.spec, paused=False)
    sim.run()
    assert sim.status.promoted


# --------------------------------------------------------------------------- capacity gate


def test_weight_is_held_until_the_canary_has_capacity_for_it():
    spec = model_rollout([{"setWeight": 10}, {"setWeight": 50}, {"pause": {}}])
    sim = Sim(spec, capacity=CapacityFacts(canary_ready=1, canary_desired=1, stable_replicas=10))
    sim.run(until=lambda s: s.status.current_step_index == 1)
    assert sim.router_weight == 10
    d = sim.run(advance_time=False)
    # 50 % of 10 stable replicas needs 5 ready canary replicas: the weight stays at 10
    assert sim.router_weight == 10 and sim.status.current_step_index == 1
    assert "waiting for canary capacity: 1/5 ready replicas for weight 50" in sim.status.message
    assert d.requeue_after == CAPACITY_POLL
    sim.capacity = CapacityFacts(canary_ready=4, canary_desired=5, stable_replicas=10)
    sim.step()
    assert sim.router_weight == 10
    sim.capacity = CapacityFacts(canary_ready=5, canary_desired=5, stable_replicas=10)
    sim.run()
    assert sim.router_weight == 50 and sim.status.current_step_index == 2


def test_reference_size_is_the_stable_size_when_the_update_started():
    spec = model_rollout([{"setWeight": 50}, {"setWeight": 100}])
    sim = Sim(spec, capacity=CapacityFacts(canary_ready=5, canary_desired=5, stable_replicas=10))
    sim.run(until=lambda s: s.status.current_step_index == 1)
    # the stable's own autoscaler shrinks it as traffic leaves: 100 % still needs 10 canary replicas
    sim.capacity = CapacityFacts(canary_ready=6, canary_desired=6, stable_replicas=5)
    sim.run(advance_time=False)
    assert sim.router_weight == 50 and "6/10" in sim.status.message
    sim.capacity = CapacityFacts(canary_ready=10, canary_desired=10, stable_replicas=5)
    sim.run()
    assert sim.status.promoted


def test_autoscaled_canary_is_never_scaled_and_must_reach_what_its_autoscaler_asks():
    spec = model_rollout([{"setWeight": 25}], capacity={"scaleCanary": True})
    cap = CapacityFacts(canary_ready=1, canary_desired=3, stable_replicas=4, autoscaler="HorizontalPodAutoscaler/inference-v2")
    sim = Sim(spec, capacity=cap)
    sim.run(advance_time=False)
    assert sim.router_weight == 0 and not sim.scaled
    assert "HorizontalPodAutoscaler/inference-v2 asks for 3" in sim.status.message
    sim.capacity = dataclasses.replace(cap, canary_ready=3)
    sim.run()
    assert sim.router_weight == 100 and sim.status.promoted


def test_scale_canary_scales_a_plain_deployment_up_only():
    spec = model_rollout([{"setWeight": 30}], capacity={"scaleCanary": True})
    sim = Sim(spec, capacity=CapacityFacts(canary_ready=1, canary_desired=1, stable_replicas=10))
    sim.run(advance_time=False)
    assert sim.scaled and sim.scaled[-1] == 3
    sim.capacity = CapacityFacts(canary_ready=3, canary_desired=3, stable_replicas=10)
    sim.run(until=lambda s: s.status.current_step_index == 1, advance_time=False)
    sim.scaled.clear()
    sim.capacity = CapacityFacts(canary_ready=10, canary_desired=10, stable_replicas=10)
    sim.run()
    assert sim.status.promoted and not sim.scaled


def test_set_canary_scale_prewarms_before_any_traffic():
    spec = model_rollout([{"setCanaryScale": {"replicas": 2}},
                          {"setHeaderRoute": {"name": "pin", "match": [{"headerName": "x-v", "headerValue": {"exact": "2"}}]}},
                          {"setCanaryScale": {"matchTrafficWeight": True}}, {"setWeight": 10}])
    sim = Sim(spec, capacity=CapacityFacts(canary_ready=1, canary_desired=2, stable_replicas=10))
    sim.run(advance_time=False)
    assert sim.status.current_step_index == 0 and "1/2" in sim.status.message and sim.router_weight == 0
    sim.capacity = CapacityFacts(canary_ready=2, canary_desired=2, stable_replicas=10)
    sim.run(until=lambda s: s.status.current_step_index == 2)
    assert sim.router_weight == 0 and sim.router_routes == {"pin"}  # dark launch: header route only
    sim.run(advance_time=False)
    assert sim.status.current_step_index == 4 and sim.router_weight == 10  # ceil(10 % of 10) = 1 <= 2 ready
    assert "2/10 ready replicas for weight 100" in sim.status.message  # full promotion needs the stable's size
    sim.capacity = CapacityFacts(canary_ready=10, canary_desired=10, stable_replicas=10)
    sim.run()
    assert sim.status.promoted


def test_required_replicas_rules():
    spec = model_rollout([{"setWeight": 5}, {"setCanaryScale": {"weight": 30}}, {"setWeight": 10}],
                         capacity={"minReadyReplicas": 2})
    st = RolloutStatus()
    cap = CapacityFacts(canary_ready=0, canary_desired=0, stable_replicas=10)
    assert required_canary_replicas(spec, st, cap, 5, 0).need == 2  # ceil(0.5) raised to the minimum
    assert required_canary_replicas(spec, st, cap, 10, 2).need == 3  # setCanaryScale weight 30 % in force
    assert required_canary_replicas(spec, st, cap, 0, 0).need == 0
    assert required_canary_replicas(spec, st, None, 50, 0).ok


def test_canary_with_no_ready_pods_gets_no_traffic_and_no_managed_routes():
    sim = Sim(model_rollout(ANALYSIS_STEPS), capacity=CapacityFacts(2, 2, 10))
    sim.run(until=lambda s: s.ensured)
    assert sim.router_weight == 20 and sim.router_routes == {"pin"}
    sim.capacity = CapacityFacts(0, 2, 10)
    sim.step()
    assert sim.router_weight == 0 and sim.router_routes == frozenset() and not sim.status.abort


def test_progress_deadline_degrades_and_optionally_aborts():
    spec = model_rollout([{"setWeight": 50}], capacity={"progressDeadlineSeconds": 300})
    sim = Sim(spec, capacity=CapacityFacts(1, 5, 10))
    d = sim.run(until=lambda s: s.status.phase is RolloutPhase.DEGRADED)
    assert sim.status.message.startswith("ProgressDeadlineExceeded: canary did not get the capacity within 5m")
    assert not sim.status.abort and d.requeue_after == CAPACITY_POLL
    assert (sim.now - T0).total_seconds() >= 300
    sim.capacity = CapacityFacts(10, 10, 10)
    sim.run()
    assert sim.status.promoted  # the deadline does not abort by default; progress resumes

    spec = model_rollout([{"setWeight": 50}], capacity={"progressDeadlineSeconds": 300, "progressDeadlineAbort": True})
    sim = Sim(spec, capacity=CapacityFacts(1, 5, 10))
    sim.run()
    assert sim.status.abort and "did not get the capacity within 5m" in sim.status.message


# --------------------------------------------------------------------------- routes and read-back


def test_header_and_mirror_routes_follow_the_steps_and_are_removed_at_the_end():
    spec = model_rollout(
        [{"setHeaderRoute": {"name": "pin", "match": [{"headerName": "x-v", "headerValue": {"exact": "2"}}]}},
         {"setMirrorRoute": {"name": "shadow", "percentage": 20, "match": [{"method": {"exact": "POST"}}]}},
         {"setWeight": 10}, {"setMirrorRoute": {"name": "shadow"}}, {"setWeight": 30}],
        trafficRouting={"istio": {"virtualServices": [{"name": "inference-routing"}]},
                        "managedRoutes": [{"name": "shadow"}, {"name": "pin"}]})
    sim = Sim(spec)
    sim.run(until=lambda s: s.status.current_step_index == 2)
    d = sim.decisions[-1]
    assert [r.name for r in d.traffic.mirror_routes] == ["shadow"] and d.traffic.mirror_routes[0].percentage == 20
    assert d.traffic.managed == ("shadow", "pin")
    sim.run(until=lambda s: s.status.current_step_index == 4)
    assert sim.router_routes == {"pin"}
    sim.run()
    assert sim.status.promoted and sim.router_routes == frozenset()


def test_no_step_completes_until_the_router_reads_the_traffic_back():
    sim = Sim(model_rollout([{"setWeight": 10}, {"setWeight": 20}]))
    sim.router_frozen = True  # the router does not take the weight
    sim.router_weight = 0
    d = sim.run(advance_time=False)
    assert sim.status.current_step_index == 0 and sim.status.verified_weight == 0
    assert "canary weight 10 wanted, 0 read back" in sim.status.message and d.requeue_after == 2.0
    sim.router_frozen = False
    sim.run()
    assert sim.status.promoted


# --------------------------------------------------------------------------- idempotency


def test_decisions_are_pure_and_a_settled_pass_is_a_fixed_point():
    sim = Sim(model_rollout(ANALYSIS_STEPS, analysis={"templates": [{"templateName": "bg"}]}))
    sim.run(until=lambda s: len(s.ensured) == 2)
    sim.step()
    before = status_to_json(sim.status)
    facts = Facts(dict(sim.verdicts), None)
    a = decide(sim.spec, sim.status, facts, sim.now)
    b = decide(sim.spec, sim.status, facts, sim.now)
    assert a == b and status_to_json(sim.status) == before  # pure: the input is not modified
    # a second identical pass changes nothing and repeats only the level-based "ensure" actions
    again = decide(sim.spec, record_traffic(a.status, TrafficObservation(a.traffic.weight, a.traffic.route_names()),
                                            sim.now), facts, sim.now)
    assert status_to_json(again.status) == status_to_json(
        record_traffic(a.status, TrafficObservation(a.traffic.weight, a.traffic.route_names()), sim.now))
    assert again.traffic == a.traffic and not again.events
    assert list(again.actions) == [x for x in a.actions if isinstance(x, EnsureAnalysisRun)]


def test_interrupted_pass_resumes_from_the_stored_status():
    """The router applied a decision but the status write was lost: the next pass, from the old
    status, asks for the same traffic (a no-op for the router) and goes on."""
    sim = Sim(model_rollout([{"setWeight": 10}, {"setWeight": 40}, {"pause": {}}]))
    sim.run(until=lambda s: s.status.current_step_index == 1)
    stored = sim.status
    lost = decide(sim.spec, stored, Facts(), sim.now)
    sim.apply(lost.traffic)  # traffic moved to 40, status never written
    again = decide(sim.spec, stored, Facts(), sim.now)
    assert again.traffic == lost.traffic
    sim.status = stored
    sim.run()
    assert sim.status.current_step_index == 2 and sim.router_weight == 40


def test_status_json_validates_against_our_crd():
    sim = Sim(model_rollout(ANALYSIS_STEPS, analysis={"templates": [{"templateName": "bg"}]}))
    sim.run(until=lambda s: len(s.ensured) == 2)
    step_run = next(n for n in sim.ensured if not n.endswith("-bg"))
    sim.verdicts[step_run] = Verdict(Phase.INCONCLUSIVE, "no data", {"phase": "Inconclusive", "metricResults": []})
    sim.run()
    doc = {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout", "metadata": {"name": "x"},
           "spec": {"trafficRouting": {"kserve": {"inferenceService": "m"}}, "steps": []},
           "status": status_to_json(sim.status)}
    assert_valid(doc, MODELROLLOUT_CRD)
    runs = {r["name"]: r for r in doc["status"]["analysisRuns"]}
    assert doc["status"]["phase"] == "Paused" and runs[step_run]["status"]["phase"] == "Inconclusive"


def test_capacity_policy_defaults():
    assert CapacityPolicy().min_ready_replicas == 1 and Requests().items()[0] == ("abort", "")
