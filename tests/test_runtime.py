"""The daemon runtime: work queue semantics, list+watch (410 -> relist), polling for stores
without a watch, leader gating, and ``analyzer run`` as a process (probes, metrics, SIGTERM).

Everything runs against the fake API server through the real ``kubernetes`` client, with a real
HTTP server answering the ``web`` provider's measurements."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from daemon_fixtures import (
    MODELROLLOUT_CRD,
    VS_API,
    HealthServer,
    canary_weight,
    create_all,
    finished,
    get_rollout,
)
from fakekube.fake import DEFAULT_CRDS_DIR

from analyzer.controller.providers import default_providers
from analyzer.controller.queue import ShutDown, WorkQueue
from analyzer.controller.reconcile import Controller
from analyzer.controller.routing import kube_routers
from analyzer.controller.runtime import GuardedObjects, GuardedStore, NotLeader, Runtime, RuntimeOptions
from analyzer.kube.lease import LeaderElector
from analyzer.kube.objects import KubeObjects
from analyzer.kube.rollouts import KubeRolloutStore
from analyzer.kube.templates import KubeTemplates
from analyzer.localprom import free_port

WITH_CRD = [{"crds": [DEFAULT_CRDS_DIR, str(MODELROLLOUT_CRD)]}]


# ---------------------------------------------------------------------- queue


def test_queue_dedups_and_never_hands_out_a_key_twice_at_once() -> None:
    async def scenario() -> None:
        q = WorkQueue()
        q.add(("ns", "a"))
        q.add(("ns", "a"))
        q.add(("ns", "b"))
        assert len(q) == 2
        first = await q.get()
        assert first == ("ns", "a")
        q.add(("ns", "a"))  # a change while it is processing: dirty, not queued beside it
        assert await q.get() == ("ns", "b")
        assert len(q) == 0
        q.done(("ns", "a"))  # now it comes back, once
        assert len(q) == 1
        assert await q.get() == ("ns", "a")
        q.done(("ns", "a"))
        q.done(("ns", "b"))
        assert len(q) == 0

    asyncio.run(scenario())


def test_queue_timers_keep_the_earliest_and_backoff_grows() -> None:
    async def scenario() -> None:
        q = WorkQueue(backoff_base=0.05, backoff_max=1.0)
        key = ("ns", "a")
        q.add_after(key, 5.0)
        q.add_after(key, 0.05)  # earlier wins
        q.add_after(key, 10.0)  # later is ignored
        assert q.timers == 1
        started = time.monotonic()
        assert await asyncio.wait_for(q.get(), 2.0) == key
        assert time.monotonic() - started < 1.0
        q.done(key)
        delays = [q.add_rate_limited(key) for _ in range(5)]
        assert delays[0] < delays[3] and max(delays) <= 1.2
        q.forget(key)
        assert q.add_rate_limited(key) < 0.1
        q.shutdown()
        with pytest.raises(ShutDown):
            await q.get()

    asyncio.run(scenario())


def test_queue_wakes_every_waiting_worker() -> None:
    async def scenario() -> None:
        q = WorkQueue()
        got: list[tuple[str, str]] = []

        async def worker() -> None:
            while True:
                try:
                    key = await q.get()
                except ShutDown:
                    return
                got.append(key)
                await asyncio.sleep(0.05)
                q.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        await asyncio.sleep(0.01)
        for i in range(4):
            q.add(("ns", str(i)))
        await asyncio.sleep(0.03)
        assert len(q.processing) == 4  # all four in parallel, not one after the other
        await asyncio.sleep(0.1)
        q.shutdown()
        await asyncio.gather(*workers)
        assert sorted(got) == [("ns", str(i)) for i in range(4)]

    asyncio.run(scenario())


# ---------------------------------------------------------------------- runtime in process


def controller(api: Any, *, allowed: Any = None, time_scale: float = 4.0) -> Controller:
    store: Any = KubeRolloutStore(api)
    objects: Any = KubeObjects(api)
    if allowed is not None:
        store, objects = GuardedStore(store, allowed), GuardedObjects(objects, allowed)
    return Controller(store=store, router_for=kube_routers(objects), providers=default_providers(),
                      templates=KubeTemplates(api), time_scale=time_scale)


async def run_until(runtime: Runtime, api: Any, names: list[str], timeout: float = 30.0,
                    during: Any = None) -> dict[str, dict[str, Any]]:
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    deadline = time.monotonic() + timeout
    statuses: dict[str, dict[str, Any]] = {}
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if during is not None:
                await during()
            statuses = {n: get_rollout(api, n).get("status") or {} for n in names}
            if all(finished(s) for s in statuses.values()):
                break
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    return statuses


def vs_weights(kube: Any, name: str) -> list[int | None]:
    return [canary_weight(e["object"]) for e in kube.audit(VS_API, "VirtualService", f"vs-{name}")]


@pytest.mark.parametrize("fake_kube", WITH_CRD, indirect=True)
def test_runtime_drives_rollouts_to_the_end_through_list_and_watch(fake_kube: Any, health: HealthServer) -> None:
    api = fake_kube.api_client()
    health.values["bad"] = 0.2
    create_all(api, ["good", "bad"], health.url)
    runtime = Runtime(controller(api), RuntimeOptions(workers=3, resync=60))
    late: list[str] = []

    async def during() -> None:
        # A rollout created after the start is found through the watch, not the list.
        if not late and runtime.synced.is_set():
            create_all(api, ["late"], health.url, with_template=False)
            late.append("late")

    statuses = asyncio.run(run_until(runtime, api, ["good", "bad"], during=during))
    statuses["late"] = asyncio.run(run_until(runtime_again(api), api, ["late"]))["late"]
    assert statuses["good"]["phase"] == "Healthy", statuses["good"].get("message")
    assert statuses["late"]["phase"] == "Healthy"
    assert statuses["bad"]["phase"] == "Degraded"
    assert vs_weights(fake_kube, "good") == [10, 5, 25, 50, 100]
    assert vs_weights(fake_kube, "bad") == [10, 5, 25, 0]
    assert runtime.passes > 0 and runtime.failures == 0
    # The first runtime saw "late" through its watch (it was not in the first list).
    assert ("default", "late") in runtime.known


def runtime_again(api: Any) -> Runtime:
    return Runtime(controller(api), RuntimeOptions(workers=2, resync=60))


@pytest.mark.parametrize("fake_kube", WITH_CRD, indirect=True)
def test_expired_watch_lists_again_and_misses_nothing(fake_kube: Any, health: HealthServer) -> None:
    api = fake_kube.api_client()
    create_all(api, ["first"], health.url)
    runtime = Runtime(controller(api), RuntimeOptions(workers=2, resync=600, watch_seconds=30))
    state: dict[str, Any] = {}

    async def during() -> None:
        if "expired" not in state and runtime.synced.is_set():
            # Every earlier resourceVersion answers 410 from now on, the open watch ends, and the
            # reconnect is answered 410 Gone; the new rollout appears while no watch is open.
            fake_kube.expire_history()
            fake_kube.inject_error("GET", r"/modelrollouts$", 410, times=1, reason="Expired",
                                   message="too old resource version")
            fake_kube.close_watches()
            create_all(api, ["second"], health.url, with_template=False)
            state["expired"] = True

    statuses = asyncio.run(run_until(runtime, api, ["first", "second"], during=during))
    assert statuses["first"]["phase"] == "Healthy"
    assert statuses["second"]["phase"] == "Healthy", statuses["second"]
    lists = [r for r in fake_kube.requests if r["method"] == "GET" and r["path"].endswith("/modelrollouts")
             and "watch" not in str(r["query"] or "")]
    assert len(lists) >= 2  # the initial list and the relist after 410


class NoWatch:
    """A store without ``watch`` (like the local file store): the runtime must poll it."""

    def __init__(self, inner: KubeRolloutStore) -> None:
        self.inner = inner

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.inner.get(namespace, name)

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.inner.list(namespace)

    def update_status(self, namespace: str, name: str, status: Any, resource_version: str) -> dict[str, Any]:
        return self.inner.update_status(namespace, name, status, resource_version)

    def patch_spec(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        return self.inner.patch_spec(namespace, name, patch)


@pytest.mark.parametrize("fake_kube", WITH_CRD, indirect=True)
def test_store_without_watch_is_polled(fake_kube: Any, health: HealthServer) -> None:
    api = fake_kube.api_client()
    create_all(api, ["polled"], health.url)
    ctl = controller(api)
    ctl.store = NoWatch(KubeRolloutStore(api))
    runtime = Runtime(ctl, RuntimeOptions(workers=1, resync=0.5))
    statuses = asyncio.run(run_until(runtime, api, ["polled"]))
    assert statuses["polled"]["phase"] == "Healthy"
    assert not any("watch" in str(r["query"] or "") for r in fake_kube.requests)
    assert sum(1 for r in fake_kube.requests if r["path"].endswith("/modelrollouts")) >= 2  # listed again


@pytest.mark.parametrize("fake_kube", WITH_CRD, indirect=True)
def test_a_follower_writes_nothing_until_it_holds_the_lease(fake_kube: Any, health: HealthServer) -> None:
    api = fake_kube.api_client()
    create_all(api, ["led"], health.url)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fake_kube.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                      "metadata": {"name": "analyzer", "namespace": "default"},
                      "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3,
                               "acquireTime": now, "renewTime": now, "leaseTransitions": 0}})
    elector = LeaderElector(api, "default", "analyzer", "me", lease_duration=3, renew_deadline=2, retry_period=0.5)
    runtime = Runtime(controller(api, allowed=elector.is_leader), RuntimeOptions(workers=2, resync=60),
                      elector=elector)
    seen: dict[str, Any] = {}

    async def during() -> None:
        if "follower" not in seen and runtime.synced.is_set():
            await asyncio.sleep(1.0)  # the other holder renews nothing, but 3 s have not passed
            seen["follower"] = (runtime.leading.is_set(), get_rollout(api, "led").get("status"))

    statuses = asyncio.run(run_until(runtime, api, ["led"], during=during))
    assert seen["follower"] == (False, None)  # not leading, and not a single status write
    assert statuses["led"]["phase"] == "Healthy"  # took over once the silent holder's lease ran out
    lease = fake_kube.get("coordination.k8s.io/v1", "Lease", "analyzer", "default")
    assert lease["spec"]["holderIdentity"] == ""  # released on shutdown
    assert lease["spec"]["leaseTransitions"] == 1


@pytest.mark.parametrize("fake_kube", WITH_CRD, indirect=True)
def test_guards_refuse_writes_without_leadership(fake_kube: Any, health: HealthServer) -> None:
    api = fake_kube.api_client()
    create_all(api, ["g"], health.url)
    store = GuardedStore(KubeRolloutStore(api), lambda: False)
    obj = store.get("default", "g")
    assert obj is not None
    with pytest.raises(NotLeader):
        store.update_status("default", "g", {"phase": "Healthy"}, obj["metadata"]["resourceVersion"])
    with pytest.raises(NotLeader):
        GuardedObjects(KubeObjects(api), lambda: False).json_patch(
            "networking.istio.io", "v1beta1", "virtualservices", "default", "vs-g", [])
    assert (get_rollout(api, "g").get("status") or {}) == {}


# ---------------------------------------------------------------------- the process


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def daemon_cmd(kubeconfig: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "analyzer.cli", "run", "--kubeconfig", kubeconfig, "-n", "default", *extra]


@pytest.mark.parametrize("fake_kube", WITH_CRD, indirect=True)
def test_analyzer_run_serves_probes_and_metrics_and_stops_cleanly_on_sigterm(fake_kube: Any, health: HealthServer) -> None:
    api = fake_kube.api_client()
    create_all(api, ["proc"], health.url)
    port = free_port()
    proc = subprocess.Popen(daemon_cmd(fake_kube.kubeconfig_path, "--listen", f"127.0.0.1:{port}", "--id", "d1",
                                       "--time-scale", "4", "--lease-duration", "4", "--renew-deadline", "3",
                                       "--retry-period", "0.5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not finished(get_rollout(api, "proc").get("status") or {}):
            time.sleep(0.2)
        assert get_rollout(api, "proc")["status"]["phase"] == "Healthy"
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
        code, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        assert 'analyzer_rollout_phase{name="proc",namespace="default",phase="Healthy"} 1.0' in text
        assert "analyzer_leader 1.0" in text
        assert "analyzer_reconciles_total" in text
        # Who wrote: every write of the daemon carries its identity in the User-Agent.
        writes = [r for r in fake_kube.requests if r["method"] in ("PUT", "PATCH") and "modelrollouts" in r["path"]]
        assert writes and all(r["user_agent"] == "rollout-analyzer/d1" for r in writes)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(x.get("event") == "signal received: shutting down" for x in lines)
    assert any(x.get("rollout") == "default/proc" for x in lines)  # log lines bound to the rollout
    assert all("timestamp" in x and "level" in x for x in lines if x.get("event") != "")
    lease = fake_kube.get("coordination.k8s.io/v1", "Lease", "rollout-analyzer", "default")
    assert lease["spec"]["holderIdentity"] == ""  # released: a standby takes over at once
    events = fake_kube.list_objects("v1", "Event", "default")
    assert any(e.get("reason") for e in events)


def test_analyzer_run_rejects_bad_options_with_a_clear_message(tmp_path: Any) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    out = subprocess.run([sys.executable, "-m", "analyzer.cli", "run", "--listen", "1.2.3.4:notaport"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 2
    assert "--listen" in out.stderr and "notaport" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "analyzer.cli", "run", "--listen", "off"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 2
    assert "no Kubernetes cluster configured" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "analyzer.cli", "run", "--kubeconfig", str(tmp_path / "nope")],
                         capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 2 and "nope" in out.stderr

