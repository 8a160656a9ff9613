"""The controller at scale: N concurrent ModelRollouts, each in an analysis step measured against a
real Prometheus, driven by the real runtime (list+watch, queue, workers, reconcile, Istio router,
kube adapter over the real ``kubernetes`` client) against the fake API server in its own process.

Targets (issue 5): <= 1 CPU core for 1000 rollouts; < 1 s p99 from a failing measurement to all
traffic back on stable.

How it runs:

1. a tiny exporter process serves ``bench_health{rollout="rNNNN"}`` (1 = healthy) and a real
   Prometheus scrapes it every second;
2. N VirtualServices (copies of the seed's) and N ModelRollouts are created: setWeight 5, then an
   analysis whose metric queries that rollout's series every ``--interval`` (count large enough to
   last the run, failureLimit 0), then setWeight 50;
3. the controller (this process) runs; once every rollout is in its analysis step, CPU time,
   passes and memory are measured over ``--steady`` seconds;
4. then ``--fail`` of the rollouts turn unhealthy in the exporter. The time from the provider
   returning the first failing value of a rollout to the JSON patch that puts its
   VirtualService's canary weight at 0 being acknowledged is recorded per rollout (a thin timing
   wrapper around the real provider and the real CustomObjects adapter).

Prints a table; exits 1 when a target is missed. ``make bench`` runs it with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake API server lives with the tests

from fakekube.fake import DEFAULT_CRDS_DIR, FakeKubeProcess  # noqa: E402
from kubernetes import client  # noqa: E402

from analyzer.controller.daemon_cli import configure_logging  # noqa: E402
from analyzer.controller.providers import default_providers  # noqa: E402
from analyzer.controller.reconcile import Controller  # noqa: E402
from analyzer.controller.routing import kube_routers  # noqa: E402
from analyzer.controller.runtime import Runtime, RuntimeOptions  # noqa: E402
from analyzer.core.outcome import ProviderOutcome  # noqa: E402
from analyzer.kube.objects import KubeObjects  # noqa: E402
from analyzer.kube.rollouts import KubeRolloutStore  # noqa: E402
from analyzer.kube.templates import KubeTemplates  # noqa: E402
from analyzer.localprom import LocalPrometheus, free_port  # noqa: E402

CRD = ROOT / "deploy" / "crd" / "modelrollout.yaml"
MR = ("rollouts.analyzer.dev", "v1alpha1", "modelrollouts")

EXPORTER = textwrap.dedent("""
    import sys, os, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    n, port, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    failing = int(sys.argv[4])
    def body(fail):
        lines = ['# TYPE bench_health gauge']
        for i in range(n):
            v = 0 if fail and i % (n // failing) == 0 else 1
            lines.append('bench_health{rollout="r%04d"} %d' % (i, v))
        return ('\\n'.join(lines) + '\\n').encode()
    healthy, broken = body(False), body(True)
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            b = broken if os.path.exists(flag) else healthy
            self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers()
            self.wfile.write(b)
        def log_message(self, *a): pass
    ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()
""")


def template(interval: str, count: int) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "bench-health", "namespace": "default"},
            "spec": {"args": [{"name": "rollout"}], "metrics": [{
                "name": "health", "interval": interval, "count": count, "failureLimit": 0,
                "successCondition": "len(result) > 0 && result[0] >= 0.5",
                "failureCondition": "len(result) > 0 && result[0] < 0.5",
                "provider": {"prometheus": {"query": 'bench_health{rollout="{{args.rollout}}"}'}}}]}}


def virtual_service(name: str) -> dict[str, Any]:
    route = [{"destination": {"host": "inference-v1", "port": {"number": 8000}}, "weight": 100},
             {"destination": {"host": "inference-v2", "port": {"number": 8000}}, "weight": 0}]
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hosts": ["inference.ml.svc.cluster.local"], "http": [{"route": route}]}}


def rollout(name: str) -> dict[str, Any]:
    return {"apiVersion": "/".join(MR[:2]), "kind": "ModelRollout", "metadata": {"name": name, "namespace": "default"},
            "spec": {"stable": {"host": "inference-v1"}, "canary": {"host": "inference-v2"},
                     "trafficRouting": {"istio": {"virtualServices": [{"name": f"vs-{name}"}]}},
                     "steps": [{"setWeight": 5},
                               {"analysis": {"templates": [{"templateName": "bench-health"}],
                                             "args": [{"name": "rollout", "value": name}]}},
                               {"setWeight": 50}]}}


class Timings:
    def __init__(self) -> None:
        self.first_fail: dict[str, float] = {}
        self.stable_at: dict[str, float] = {}


class TimedProvider:
    """The real provider; notes when a rollout's first failing value came back."""

    def __init__(self, inner: Any, timings: Timings) -> None:
        self.inner, self.timings = inner, timings

    async def measure(self, spec: Mapping[str, Any], now: datetime) -> ProviderOutcome:
        out: ProviderOutcome = await self.inner.measure(spec, now)
        value = out.value
        if isinstance(value, list) and value and value[0] < 0.5:
            name = str(spec.get("prometheus", spec).get("query", "")).split('"')[1]
            self.timings.first_fail.setdefault(name, time.monotonic())
        return out


class TimedObjects(KubeObjects):
    """The real CustomObjects adapter; notes when a VirtualService's canary weight became 0."""

    def __init__(self, api: Any, timings: Timings) -> None:
        super().__init__(api)
        self.timings = timings

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        obj = super().json_patch(group, version, plural, namespace, name, ops)
        rollout_name = name.removeprefix("vs-")
        if rollout_name in self.timings.first_fail and rollout_name not in self.timings.stable_at:
            weights = [d.get("weight", 0) for r in obj["spec"]["http"] for d in r.get("route", [])
                       if d["destination"]["host"] == "inference-v2"]
            if weights and all(w == 0 for w in weights):
                self.timings.stable_at[rollout_name] = time.monotonic()
        return obj


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def bench(args: argparse.Namespace, prom: LocalPrometheus, kube: FakeKubeProcess, flag: Path) -> dict[str, Any]:
    api = kube.api_client()
    co = client.CustomObjectsApi(api)
    n = args.rollouts
    names = [f"r{i:04d}" for i in range(n)]
    co.create_namespaced_custom_object("argoproj.io", "v1alpha1", "default", "analysistemplates",
                                       template(args.interval, 100_000))
    t0 = time.monotonic()
    for name in names:
        co.create_namespaced_custom_object("networking.istio.io", "v1beta1", "default", "virtualservices",
                                           virtual_service(f"vs-{name}"))
        co.create_namespaced_custom_object(*MR[:2], "default", MR[2], rollout(name))
    print(f"created {n} rollouts in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    timings = Timings()
    providers = dict(default_providers(prom.url))
    providers["prometheus"] = TimedProvider(providers["prometheus"], timings)
    ctl = Controller(store=KubeRolloutStore(api), router_for=kube_routers(TimedObjects(api, timings)),
                     providers=providers, templates=KubeTemplates(api))
    runtime = Runtime(ctl, RuntimeOptions(namespace="default", workers=args.workers, resync=300))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))

    # Ramp-up: every rollout in its analysis step with a first measurement.
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(2)
        items = await asyncio.to_thread(co.list_namespaced_custom_object, *MR[:2], "default", MR[2])
        running = sum(1 for o in items["items"] if (o.get("status") or {}).get("analysisRuns"))
        print(f"  ramp-up: {running}/{n} analysing after {time.monotonic() - t0:.0f}s", file=sys.stderr)
        if running == n or time.monotonic() - t0 > args.ramp_timeout:
            break
    ramp = time.monotonic() - t0

    # Steady state.
    await asyncio.sleep(2)
    cpu0, passes0, wall0 = time.process_time(), runtime.passes, time.monotonic()
    kcpu0, pcpu0 = cpu_of(kube.proc.pid), cpu_of(prom.pid or 0)  # type: ignore[union-attr]
    await asyncio.sleep(args.steady)
    cpu1, passes1, wall1 = time.process_time(), runtime.passes, time.monotonic()
    kcpu1, pcpu1 = cpu_of(kube.proc.pid), cpu_of(prom.pid or 0)  # type: ignore[union-attr]
    rss = rss_mb()

    # Failures.
    flag.touch()
    failing = len(range(0, n, n // args.fail)) if args.fail else 0
    t0 = time.monotonic()
    while len(timings.stable_at) < failing and time.monotonic() - t0 < args.fail_timeout:
        await asyncio.sleep(0.5)
    stop.set()
    await task
    latencies = [timings.stable_at[k] - timings.first_fail[k] for k in timings.stable_at]
    return {
        "rollouts": n, "workers": args.workers, "interval": args.interval, "ramp_s": ramp,
        "steady_s": wall1 - wall0, "passes": passes1 - passes0, "cpu_s": cpu1 - cpu0,
        "kube_cpu_s": kcpu1 - kcpu0, "prom_cpu_s": pcpu1 - pcpu0, "rss_mb": rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "failing": failing, "rolled_back": len(latencies), "latencies": latencies, "errors": runtime.failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--interval", default="30s", help="analysis interval of every rollout")
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of steady state measured")
    parser.add_argument("--fail", type=int, default=100, help="rollouts that turn unhealthy")
    parser.add_argument("--ramp-timeout", type=float, default=300.0)
    parser.add_argument("--fail-timeout", type=float, default=120.0)
    args = parser.parse_args()
    configure_logging("warning")  # as deployed, minus the info lines of every transition

    with tempfile.TemporaryDirectory() as tmp:
        flag = Path(tmp) / "fail"
        port = free_port()
        exporter = subprocess.Popen([sys.executable, "-c", EXPORTER, str(args.rollouts), str(port), str(flag),
                                     str(max(1, args.fail))])
        kube = FakeKubeProcess(crds=[DEFAULT_CRDS_DIR, str(CRD)], extra_args=["--no-audit"]).start()
        try:
            with LocalPrometheus(scrape_targets=[f"127.0.0.1:{port}"], scrape_interval="1s") as prom:
                prom.wait_for("bench_health", timeout=30)
                r = asyncio.run(bench(args, prom, kube, flag))
        finally:
            kube.close()
            exporter.terminate()
            exporter.wait()

    cores = r["cpu_s"] / r["steady_s"]
    rate = r["passes"] / r["steady_s"]
    p50, p99 = pct(r["latencies"], 50), pct(r["latencies"], 99)
    rows = [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"),
        ("rollouts / workers / analysis interval", f"{r['rollouts']} / {r['workers']} / {r['interval']}"),
        ("ramp-up (all analysing)", f"{r['ramp_s']:.1f} s"),
        ("reconciles/s (steady)", f"{rate:.1f}"),
        ("CPU per reconcile (controller)", f"{1000 * r['cpu_s'] / max(1, r['passes']):.2f} ms"),
        ("controller CPU (steady)", f"{cores:.2f} cores  (target <= 1)"),
        ("fake API server / Prometheus CPU", f"{r['kube_cpu_s'] / r['steady_s']:.2f} / {r['prom_cpu_s'] / r['steady_s']:.2f} cores"),
        ("controller RSS (steady / peak)", f"{r['rss_mb']:.0f} / {r['peak_rss_mb']:.0f} MiB"),
        ("failing measurement -> stable", f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
                                          f"{max(r['latencies'], default=float('nan')) * 1000:.0f} ms  (target p99 < 1 s)"),
        ("rolled back / turned unhealthy", f"{r['rolled_back']} / {r['failing']}"),
        ("failed passes", str(r["errors"])),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    ok = cores <= 1.0 and p99 < 1.0 and r["rolled_back"] == r["failing"]
    if r["latencies"]:
        print(f"{'latency mean':<{width}}  {statistics.mean(r['latencies']) * 1000:.0f} ms")
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
