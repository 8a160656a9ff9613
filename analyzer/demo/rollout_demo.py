"""``analyzer demo``: a real canary on one machine.

What runs, all on 127.0.0.1 and all real: two model servers (``inference-v1`` stable and
``inference-v2`` candidate, logistic regression trained at start, Prometheus metrics by status
code and a latency histogram), HAProxy in front of them (weights and the ``x-model-version``
header route through its runtime socket), Prometheus scraping both servers every second, and a
load generator sending traffic through HAProxy. The controller is the product's own reconcile
(``analyzer.controller.reconcile``) over the local file store, with the statistical judge
(``provider.judge``) as the analysis at every step.

Two rollouts with the seed's shape (5 % -> 25 % -> 50 % -> 100 %, compressed timings):

* a good v2 (same model quality): promoted;
* a bad v2 (+2 points of errors, +30 % latency): the judge sees it at the first step with
  enough evidence and the controller puts all traffic back on v1 by itself.

Each gets an HTML report (``analyzer report``) with plots of what happened.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from analyzer.controller.providers import default_providers
from analyzer.controller.reconcile import Controller, reconcile
from analyzer.controller.routing import routers
from analyzer.demo.loadgen import LoadGenerator
from analyzer.demo.model_server import Fault, ModelServer
from analyzer.local.events import LogEvents, events_path, read_events
from analyzer.local.store import LocalRolloutStore
from analyzer.local.templates import LocalTemplates
from analyzer.localhaproxy import LocalHAProxy
from analyzer.localprom import LocalPrometheus

NAMESPACE = "demo"
HEADER_MAP = "header-routes.map"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    fault: Fault
    expect: str  # the phase this scenario should end in


SCENARIOS = (
    Scenario("good-v2", "good v2 (same quality as v1)", Fault(), "Healthy"),
    Scenario("bad-v2", "bad v2 (+2 points of errors, +30 % latency)", Fault(error_rate=0.02, latency_factor=1.3),
             "Degraded"),
)


@dataclass(frozen=True)
class Timing:
    """Compressed timings. ``judge_horizon``: how long one step's judge looks before it passes."""

    judge_horizon: int = 30  # seconds
    judge_interval: int = 3  # seconds between judge measurements
    rps: float = 200.0
    min_samples: int = 100


def judge_template(timing: Timing) -> dict[str, Any]:
    """The step analysis: the judge on canary (version=v2) vs baseline (version=v1) since the
    run's start, an anytime-valid test that fails as soon as the evidence says so and passes at
    the horizon. ``start`` is filled by the controller with the run's start time."""
    n = timing.judge_horizon // timing.judge_interval + 3
    policy = {
        "name": "demo", "alpha": 0.05, "horizon": f"{timing.judge_horizon}s", "step": "1s",
        "canary": {"version": "v2"}, "baseline": {"version": "v1"},
        "metrics": [
            {"name": "errors", "type": "error-rate", "requests": "http_requests_total",
             "errors": 'http_requests_total{code=~"5.."}', "tolerance": 1.2, "min_samples": timing.min_samples,
             "warmup": "0s"},
            {"name": "latency", "type": "latency", "buckets": "http_request_duration_seconds_bucket", "unit": "s",
             "min_samples": timing.min_samples, "warmup": "0s"},
        ],
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "demo-judge"},
        "spec": {"args": [{"name": "start"}], "metrics": [{
            "name": "judge", "interval": f"{timing.judge_interval}s", "count": n, "failureLimit": 0,
            "inconclusiveLimit": n, "consecutiveSuccessLimit": 1,
            "successCondition": 'result.verdict == "pass"', "failureCondition": 'result.verdict == "fail"',
            "provider": {"judge": {"policy": policy, "start": "{{args.start}}"}},
        }]},
    }


def rollout_manifest(name: str, socket: Path, header_map: Path) -> dict[str, Any]:
    judge = {"analysis": {"templates": [{"templateName": "demo-judge"}]}}
    return {
        "apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "stable": {"host": "inference-v1"}, "canary": {"host": "inference-v2"},
            "trafficRouting": {"haproxy": {"socket": str(socket), "headerMap": str(header_map)}},
            "steps": [{"setHeaderRoute": {"name": "pin-v2", "match": [{"headerName": "x-model-version",
                                                                      "headerValue": {"exact": "v2"}}]}},
                      {"setWeight": 5}, judge, {"setWeight": 25}, judge, {"setWeight": 50}, judge,
                      {"setWeight": 100}, {"pause": {"duration": "3s"}}],
            # The judge fails or passes at every step; this is for an inconclusive (idle) canary.
            "capacity": {"progressDeadlineSeconds": 300},
            "judge": {"canary": {"version": "v2"}, "baseline": {"version": "v1"}},
        },
    }


# --------------------------------------------------------------------------- live view


def _verdicts(run: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, verdict, samples) from the judge's last measurement of a run."""
    out: list[tuple[str, str, str]] = []
    for mr in (run.get("status") or {}).get("metricResults") or []:
        ms = mr.get("measurements") or []
        if not ms:
            continue
        try:
            doc = yaml.safe_load(ms[-1].get("value") or "{}")
        except yaml.YAMLError:
            doc = None
        if isinstance(doc, dict) and "metrics" in doc:
            for m in doc.get("metrics") or []:
                s = m.get("samples") or {}
                out.append((str(m.get("name")), str(m.get("status")),
                            f"canary {s.get('canary', '?')} / baseline {s.get('baseline', '?')}"))
        else:
            out.append((str(mr.get("name")), str(ms[-1].get("phase")), ms[-1].get("message") or ""))
    return out


def render(title: str, obj: Mapping[str, Any] | None, next_in: float | None, served: Mapping[str, float]) -> Group:
    st = dict((obj or {}).get("status") or {})
    steps = ((obj or {}).get("spec") or {}).get("steps") or []
    w = st.get("weights") or {}
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]rollout[/]", title)
    head.add_row("phase", f"[bold]{st.get('phase', '-')}[/]  {st.get('message', '')}")
    idx = st.get("currentStepIndex")
    head.add_row("step", f"{(idx if idx is not None else len(steps))}/{len(steps)}")
    head.add_row("weight", f"desired {w.get('desired', '-')} %, verified {w.get('verified', '-')} % (HAProxy read-back)")
    total = sum(served.values()) or 1.0
    head.add_row("served", ", ".join(f"{k}: {int(v)} ({100 * v / total:.1f} %)" for k, v in served.items()))
    head.add_row("next decision", "-" if next_in is None else f"in {next_in:.1f} s")
    table = Table(title="analysis runs", expand=False)
    for col in ("run", "phase", "metric", "verdict", "samples"):
        table.add_column(col)
    for run in (st.get("analysisRuns") or [])[-4:]:
        rows = _verdicts(run) or [("-", "-", "-")]
        for i, (metric, verdict, samples) in enumerate(rows):
            table.add_row(run["name"] if i == 0 else "", run.get("phase", "") if i == 0 else "", metric, verdict, samples)
    return Group(head, table)


# --------------------------------------------------------------------------- one scenario


@dataclass
class Outcome:
    scenario: Scenario
    phase: str
    message: str
    seconds: float
    report: Path | None
    served: dict[str, float]
    final_weight: int | None
    splits: list[SplitCheck]
    judge_reason: str = ""


@dataclass(frozen=True)
class Sample:
    """The canary weight HAProxy read back, and what each model server had served by then."""

    at: float
    weight: int | None
    v1: float
    v2: float


@dataclass(frozen=True)
class SplitCheck:
    weight: int
    requests: int
    canary_share: float  # observed, in %
    sigma: float  # binomial standard error, in %

    @property
    def ok(self) -> bool:
        return abs(self.canary_share - self.weight) <= max(4 * self.sigma, 1.0)


def split_checks(timeline: list[Sample], min_requests: int = 200) -> list[SplitCheck]:
    """Per stretch of constant weight: the share of requests the canary served (from the model
    servers' own counters) against the weight set in HAProxy. Stretches are trimmed by one sample
    at each end, because a weight change lands between two samples."""
    out: list[SplitCheck] = []
    i = 0
    while i < len(timeline):
        j = i
        while j + 1 < len(timeline) and timeline[j + 1].weight == timeline[i].weight:
            j += 1
        w = timeline[i].weight
        if w is not None and j - i >= 2:
            a, b = timeline[i + 1], timeline[j]
            n1, n2 = b.v1 - a.v1, b.v2 - a.v2
            n = n1 + n2
            if n >= min_requests:
                p = w / 100
                out.append(SplitCheck(w, int(n), 100 * n2 / n, 100 * (p * (1 - p) / n) ** 0.5))
        i = j + 1
    return out


async def _drive(ctl: Controller, name: str, title: str, live: Live | None, servers: dict[str, ModelServer],
                 deadline: float, timeline: list[Sample]) -> dict[str, Any]:
    while True:
        result = await reconcile(ctl, NAMESPACE, name)
        obj = ctl.store.get(NAMESPACE, name) or {}
        phase = (obj.get("status") or {}).get("phase")
        wait = min(result.requeue_after if result.requeue_after is not None else 1.0, 1.0)
        served = {v: s.served("200") + s.served("500") for v, s in servers.items()}
        timeline.append(Sample(time.monotonic(), ((obj.get("status") or {}).get("weights") or {}).get("verified"),
                               served["v1"], served["v2"]))
        if live is not None:
            live.update(render(title, obj, result.requeue_after, served))
        if phase in ("Healthy", "Degraded") or time.monotonic() > deadline:
            return obj
        await asyncio.sleep(wait)


def run_scenario(scenario: Scenario, workdir: Path, console: Console, timing: Timing, *,
                 live_view: bool = True, time_limit: float = 150.0) -> Outcome:
    """Start everything for one rollout, drive it to its end, stop everything, write the report."""
    from analyzer.report import write_report

    started = time.monotonic()
    store_dir = workdir / scenario.name / "store"
    store = LocalRolloutStore(store_dir)
    template_path = workdir / scenario.name / "demo-judge.yaml"
    template_path.write_text(yaml.safe_dump(judge_template(timing), sort_keys=False))
    with ExitStack() as stack:
        v1 = stack.enter_context(ModelServer("v1", seed=1))
        v2 = stack.enter_context(ModelServer("v2", seed=1, fault=scenario.fault))
        haproxy = stack.enter_context(LocalHAProxy(stable=v1.addr, canary=v2.addr))
        prom = stack.enter_context(LocalPrometheus(scrape_targets=[v1.addr, v2.addr], job="models"))
        console.print(f"  model servers v1 {v1.addr}, v2 {v2.addr}; HAProxy {haproxy.url}; Prometheus {prom.url}",
                      soft_wrap=True)
        stack.enter_context(LoadGenerator(f"{haproxy.url}/predict", timing.rps, workers=8))
        prom.wait_for('sum(http_requests_total{version="v1"}) > 0', timeout=30)
        store.apply(rollout_manifest(scenario.name, haproxy.workdir / "admin.sock", haproxy.workdir / HEADER_MAP))
        events = LogEvents(store_dir)
        ctl = Controller(store=store, router_for=routers(), providers=default_providers(prom.url),
                         templates=LocalTemplates([template_path]), events=events)
        servers = {"v1": v1, "v2": v2}
        timeline: list[Sample] = []
        if live_view:
            with Live(render(scenario.title, store.get(NAMESPACE, scenario.name), None, {}), console=console,
                      refresh_per_second=4, transient=False) as live:
                obj = asyncio.run(_drive(ctl, scenario.name, scenario.title, live, servers, started + time_limit,
                                         timeline))
        else:
            obj = asyncio.run(_drive(ctl, scenario.name, scenario.title, None, servers, started + time_limit, timeline))
        served = {"v1": v1.served("200") + v1.served("500"), "v2": v2.served("200") + v2.served("500")}
        final_weight = haproxy.router().canary_weight()
        report = None
        try:
            report = write_report(obj, read_events(events_path(store_dir, NAMESPACE, scenario.name)), prom.url,
                                  workdir / scenario.name / "report")
        except Exception as exc:  # the rollout's outcome stands even if the report cannot be drawn
            console.print(f"[yellow]report for {scenario.name} not written: {exc}[/]")
    st = obj.get("status") or {}
    return Outcome(scenario, str(st.get("phase")), str(st.get("message") or ""), time.monotonic() - started,
                   report, served, final_weight, split_checks(timeline), _failed_reason(st))


def _failed_reason(status: Mapping[str, Any]) -> str:
    """The judge's own words for a failed run (Argo's message only says a limit was passed)."""
    for run in status.get("analysisRuns") or []:
        if run.get("phase") != "Failed":
            continue
        for mr in (run.get("status") or {}).get("metricResults") or []:
            for m in reversed(mr.get("measurements") or []):
                try:
                    doc = yaml.safe_load(m.get("value") or "{}")
                except yaml.YAMLError:
                    continue
                if isinstance(doc, dict) and doc.get("verdict") == "fail":
                    return str(doc.get("reason") or "")
    return ""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(out_dir: Path | None = None, *, live_view: bool = True, timing: Timing | None = None,
         scenarios: tuple[Scenario, ...] = SCENARIOS) -> int:
    # The live view tells the story; the controller's info logs would scroll it away.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    console = Console()
    timing = timing or Timing()
    workdir = out_dir or Path(tempfile.mkdtemp(prefix="analyzer-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for s in scenarios:
        (workdir / s.name).mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill` stops everything too, like Ctrl-C
    outcomes: list[Outcome] = []
    try:
        for s in scenarios:
            console.rule(f"[bold]{s.title}[/]")
            outcomes.append(run_scenario(s, workdir, console, timing, live_view=live_view))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: everything the demo started has been stopped[/]")
        return 130
    console.rule("[bold]summary[/]")
    table = Table()
    for col in ("rollout", "expected", "ended", "canary weight in HAProxy", "served v1 / v2", "time"):
        table.add_column(col)
    ok = True
    for o in outcomes:
        good = o.phase == o.scenario.expect
        ok &= good
        table.add_row(o.scenario.name, o.scenario.expect, f"[{'green' if good else 'red'}]{o.phase}[/]",
                      f"{o.final_weight} %", f"{int(o.served['v1'])} / {int(o.served['v2'])}", f"{o.seconds:.0f} s")
    console.print(table)
    for o in outcomes:
        for c in o.splits:
            console.print(f"{o.scenario.name}: weight {c.weight} %: v2 served {c.canary_share:.1f} % of {c.requests} "
                          f"requests (binomial sd {c.sigma:.1f} points) {'ok' if c.ok else 'OFF'}")
    for o in outcomes:
        console.print(f"{o.scenario.name}: {o.message or o.phase}")
        if o.judge_reason:
            console.print(f"  the judge: {o.judge_reason}")
        if o.report:
            console.print(f"report: {o.report}")
    if shutil.which("xdg-open") is None:
        console.print("open the reports in a browser to see the plots")
    return 0 if ok else 1
