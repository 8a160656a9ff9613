"""Leader election on a coordination.k8s.io/v1 Lease, against the fake API server through the real
kubernetes client. Durations are short (about a second) so handovers happen in test time."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzer.kube.lease import LeaderElector, default_identity

NS, NAME = "default", "rollout-analyzer"
# lease 1 s, renew deadline 0.6 s, retry 0.15 s (client-go: duration > deadline > 1.2 x retry)
FAST = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.15}


def elector(fake_kube: Any, identity: str, **kw: Any) -> LeaderElector:
    return LeaderElector(fake_kube.api_client(), NS, NAME, identity, **{**FAST, **kw})


def lease(fake_kube: Any) -> dict[str, Any]:
    obj = fake_kube.get("coordination.k8s.io/v1", "Lease", NAME, NS)
    assert obj is not None
    return obj["spec"]


class Candidate:
    """One elector's run() in its own event loop thread, recording when it led."""

    def __init__(self, el: LeaderElector, *, release_on_stop: bool = True) -> None:
        self.el = el
        self.release_on_stop = release_on_stop
        self.started: list[float] = []
        self.stopped: list[float] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._ready = threading.Event()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._ready.set()
        self._loop.run_until_complete(self.el.run(lambda: self.started.append(time.monotonic()),
                                                  self._stopped, self._stop, release_on_stop=self.release_on_stop))

    async def _stopped(self) -> None:  # a coroutine callback works too
        self.stopped.append(time.monotonic())

    def start(self) -> Candidate:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()


def wait_for(cond: Any, timeout: float) -> float:
    """Seconds until ``cond()`` held; fails after ``timeout``."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - t0


def test_one_of_two_wins_and_the_other_stays_follower(fake_kube: Any) -> None:
    a, b = elector(fake_kube, "a"), elector(fake_kube, "b")
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    assert a.is_leader() and not b.is_leader()
    spec = lease(fake_kube)
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0 and spec["leaseDurationSeconds"] == 1
    # renewing keeps acquireTime and transitions, moves renewTime
    time.sleep(0.01)
    assert a.try_acquire_or_renew() is True
    again = lease(fake_kube)
    assert again["acquireTime"] == spec["acquireTime"] and again["leaseTransitions"] == 0
    assert again["renewTime"] > spec["renewTime"]
    assert b.try_acquire_or_renew() is False and b.holder == "a"


def test_follower_takes_over_within_the_lease_duration_when_the_leader_stops_renewing(fake_kube: Any) -> None:
    a = Candidate(elector(fake_kube, "a"), release_on_stop=False).start()
    wait_for(a.el.is_leader, 3)
    b = Candidate(elector(fake_kube, "b")).start()
    time.sleep(1.5)  # longer than the lease: a keeps renewing, b must not take over
    assert a.el.is_leader() and not b.el.is_leader() and b.started == []
    last_renew = lease(fake_kube)["renewTime"]
    a.stop()  # stops renewing without releasing, like a killed process
    stopped_at = time.monotonic()
    assert lease(fake_kube)["holderIdentity"] == "a"
    took = wait_for(b.el.is_leader, 5)
    # lease_duration after b last saw a renewal, plus one retry period (with jitter) to notice
    assert took <= FAST["lease_duration"] + 2 * FAST["retry_period"] + 0.3, took
    assert took >= FAST["lease_duration"] - FAST["retry_period"] - 0.05, took  # not before the lease expired
    spec = lease(fake_kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert spec["acquireTime"] > last_renew
    assert b.started and b.started[0] >= stopped_at
    b.stop()


def test_release_hands_over_at_once(fake_kube: Any) -> None:
    slow = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.15}
    a = Candidate(elector(fake_kube, "a", **slow)).start()
    wait_for(a.el.is_leader, 3)
    b = Candidate(elector(fake_kube, "b", **slow)).start()
    time.sleep(0.5)
    assert not b.el.is_leader()
    a.stop()  # graceful shutdown: release
    assert not a.el.is_leader() and len(a.stopped) == 1
    took = wait_for(b.el.is_leader, 5)
    assert took < 0.6, f"release should hand over at the next retry, took {took:.2f} s (lease is 3 s)"
    spec = lease(fake_kube)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    released = [e["object"]["spec"] for e in fake_kube.audit("coordination.k8s.io/v1", "Lease", NAME, NS)
                if e["object"]["spec"].get("holderIdentity") == ""]
    assert released and released[0]["leaseDurationSeconds"] == 1
    b.stop()


def test_release_by_a_follower_writes_nothing(fake_kube: Any) -> None:
    a, b = elector(fake_kube, "a"), elector(fake_kube, "b")
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    assert b.release() is True
    assert lease(fake_kube)["holderIdentity"] == "a" and a.is_leader()


def test_a_409_race_never_gives_two_leaders(fake_kube: Any) -> None:
    """Both candidates see the same expired Lease and PUT with the same resourceVersion; the
    server takes one write and answers the other 409, which is a lost race, not leadership."""
    old = elector(fake_kube, "old")
    assert old.try_acquire_or_renew()
    cands = [elector(fake_kube, f"c{i}") for i in range(4)]
    assert not any(c.try_acquire_or_renew() for c in cands)  # each has now observed old's record
    time.sleep(FAST["lease_duration"] + 0.1)  # expired on every candidate's clock
    fake_kube.set_request_delay(0.2)  # both GETs are answered before either PUT lands
    results: dict[str, bool] = {}
    barrier = threading.Barrier(len(cands))

    def attempt(c: LeaderElector) -> None:
        barrier.wait()
        results[c.identity] = c.try_acquire_or_renew()

    threads = [threading.Thread(target=attempt, args=(c,)) for c in cands]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    fake_kube.set_request_delay(0)
    winners = [k for k, v in results.items() if v]
    assert len(winners) == 1, results
    assert [c.identity for c in cands if c.is_leader()] == winners
    assert lease(fake_kube)["holderIdentity"] == winners[0] and lease(fake_kube)["leaseTransitions"] == 1
    conflicts = [r for r in fake_kube.requests if r["method"] == "PUT" and "/leases/" in r["path"] and r["code"] == 409]
    assert len(conflicts) == len(cands) - 1
    # the old leader learns at its next renewal that it lost (its cached resourceVersion is stale)
    assert old.try_acquire_or_renew() is False and not old.is_leader()


def test_two_candidates_racing_from_start_never_lead_together(fake_kube: Any) -> None:
    """No Lease yet: both create at once (409 AlreadyExists for one), then keep campaigning."""
    fake_kube.set_request_delay(0.02)
    cands = [Candidate(elector(fake_kube, name)).start() for name in ("a", "b")]
    overlap = 0
    leaders_seen: set[str] = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        now_leaders = [c.el.identity for c in cands if c.el.is_leader()]
        overlap += len(now_leaders) > 1
        leaders_seen.update(now_leaders)
        time.sleep(0.005)
    assert overlap == 0 and len(leaders_seen) == 1
    for c in cands:
        c.stop()


def test_api_errors_make_the_leader_step_down_after_the_renew_deadline(fake_kube: Any) -> None:
    a = Candidate(elector(fake_kube, "a")).start()
    wait_for(a.el.is_leader, 3)
    assert a.started and not a.stopped
    fake_kube.inject_error(None, r"/leases", 500, times=10_000)
    broke = time.monotonic()
    took = wait_for(lambda: not a.el.is_leader(), 3)
    # at most the renew deadline after the last successful renewal, which was before the breakage
    assert took <= FAST["renew_deadline"] + 0.05, took
    wait_for(lambda: bool(a.stopped), 2)
    # the callback came before any follower could take over (lease duration after the last renewal)
    assert a.stopped[0] - broke < FAST["lease_duration"]
    # the API comes back: the same candidate leads again (the Lease still names it)
    fake_kube._http.injected.clear()  # no public "stop injecting"; the errors were injected without limit
    wait_for(a.el.is_leader, 3)
    assert len(a.started) == 2
    a.stop()


def test_hung_api_server_steps_down_on_time(fake_kube: Any) -> None:
    """Requests that hang (no answer) must not keep a leader acting past the renew deadline."""
    a = Candidate(elector(fake_kube, "a", request_timeout=5.0)).start()
    wait_for(a.el.is_leader, 3)
    fake_kube.set_request_delay(3.0)
    took = wait_for(lambda: not a.el.is_leader(), 3)
    assert took <= FAST["renew_deadline"] + 0.05
    wait_for(lambda: bool(a.stopped), 1)
    fake_kube.set_request_delay(0)
    a.stop()


def test_times_are_written_as_micro_time_even_at_whole_seconds(fake_kube: Any) -> None:
    """The client's isoformat() drops a zero fraction; the server demands six digits."""
    whole = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    a = elector(fake_kube, "a", wall=lambda: whole)
    assert a.try_acquire_or_renew() is True
    spec = lease(fake_kube)
    assert spec["renewTime"] == "2026-03-01T12:00:00.000001Z" and spec["acquireTime"] == spec["renewTime"]


def test_validity_is_judged_on_our_clock_not_the_holders(fake_kube: Any) -> None:
    """A leader whose clock lags by an hour writes renewTimes that look long expired; the follower
    still waits a lease duration from when it saw each renewal (client-go's skew safety)."""
    lagging = elector(fake_kube, "a", wall=lambda: datetime.now(UTC) - timedelta(hours=1))
    b = elector(fake_kube, "b")
    assert lagging.try_acquire_or_renew()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        assert lagging.try_acquire_or_renew()
        assert b.try_acquire_or_renew() is False
        time.sleep(0.1)
    assert lease(fake_kube)["holderIdentity"] == "a"


def test_bad_timing_is_refused(fake_kube: Any) -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(fake_kube.api_client(), NS, NAME, "a", lease_duration=1, renew_deadline=1, retry_period=0.2)
    with pytest.raises(ValueError, match="retry_period"):
        LeaderElector(fake_kube.api_client(), NS, NAME, "a", lease_duration=2, renew_deadline=1, retry_period=1)


def test_cancelling_run_releases_and_tells_the_callback(fake_kube: Any) -> None:
    events: list[str] = []

    async def main() -> None:
        el = elector(fake_kube, default_identity())
        task = asyncio.create_task(el.run(lambda: events.append("started"), lambda: events.append("stopped")))
        for _ in range(300):
            if el.is_leader():
                break
            await asyncio.sleep(0.01)
        assert el.is_leader()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not el.is_leader()

    asyncio.run(main())
    assert events == ["started", "stopped"]
    assert lease(fake_kube)["holderIdentity"] == ""
