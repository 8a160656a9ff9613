"""``analyzer run``: the controller daemon (the Dockerfile's entrypoint).

Kubernetes mode (default) watches ModelRollouts through the API server, drives Istio / KServe,
reads Argo AnalysisTemplates from the cluster, records Kubernetes Events and elects a leader on a
``coordination.k8s.io`` Lease. Local mode (``--store DIR``) drives rollouts kept in files (see
``analyzer.local.store``) with HAProxy as the router, listing the store every ``--resync``
seconds; there is no Lease (one daemon per store).

Logs are JSON lines on stderr (structlog), one object per line, bound to the rollout they
concern. Exit codes: 0 after a clean shutdown (SIGTERM / SIGINT), 2 for bad options or a
configuration that cannot be used (the message names the option and why).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import structlog

from analyzer.controller.health import HealthServer, parse_listen
from analyzer.controller.metrics import ControllerMetrics
from analyzer.controller.providers import default_providers
from analyzer.controller.reconcile import Controller
from analyzer.controller.routing import routers
from analyzer.controller.runtime import GuardedObjects, GuardedStore, Runtime, RuntimeOptions

log = structlog.get_logger("analyzer.daemon")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(level: str) -> None:
    """JSON lines on stderr: timestamp, level, event, and whatever the code bound (rollout=...)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Modules that log through the standard library (local events, third parties) as JSON too.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=max(LEVELS[level], logging.INFO), handlers=[handler], force=True)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(), "level": record.levelname.lower(),
               "logger": record.name, "event": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _with_slack(sink: Any) -> Any:
    """Events also go to Slack when ``SLACK_BOT_TOKEN`` and ``SLACK_CHANNEL`` are set (docs/slack.md);
    the notifier delivers in the background and never blocks or fails a pass."""
    token, channel = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("SLACK_CHANNEL")
    if not (token and channel):
        return sink
    from analyzer.notify import FanOut
    from analyzer.notify.slack import SlackNotifier

    return FanOut([sink, SlackNotifier.from_token(token, channel, base_url=os.environ.get("SLACK_API_BASE_URL"))])


def _default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


@click.command("run")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig file (else $KUBECONFIG, ~/.kube/config, in-cluster).")
@click.option("--context", help="Kubeconfig context to use.")
@click.option("-n", "--namespace", help="Namespace to watch, or 'all' (default: the context's namespace).")
@click.option("--prometheus", "prometheus", metavar="URL", help="Prometheus address for templates that name none.")
@click.option("--workers", type=click.IntRange(1, 256), default=4, show_default=True, help="Concurrent reconcile passes.")
@click.option("--leader-elect/--no-leader-elect", default=None,
              help="Elect a leader on a Lease (default: on with a cluster, off with --store).")
@click.option("--lease-namespace", help="Namespace of the Lease (default: $POD_NAMESPACE, else the context's).")
@click.option("--lease-name", default="rollout-analyzer", show_default=True)
@click.option("--lease-duration", type=click.FloatRange(min=1.0), default=15.0, show_default=True,
              help="Seconds a follower waits for a silent leader before taking over.")
@click.option("--renew-deadline", type=click.FloatRange(min=0.5), default=10.0, show_default=True)
@click.option("--retry-period", type=click.FloatRange(min=0.1), default=2.0, show_default=True)
@click.option("--id", "identity", help="This replica's identity in the Lease and in its User-Agent (default: pod or host name and pid).")
@click.option("--listen", default="0.0.0.0:8080", show_default=True, help="HOST:PORT for /healthz, /readyz, /metrics; 'off' for none.")
@click.option("--resync", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between full relists/requeues (default 300 with a cluster, 5 with --store).")
@click.option("--time-scale", type=click.FloatRange(min=0.001), default=1.0, show_default=True,
              help="Divide every analysis wait by this (tests and demos).")
@click.option("--store", type=click.Path(file_okay=False), help="Local mode: rollouts kept in files under DIR.")
@click.option("--templates", "template_paths", multiple=True, type=click.Path(exists=True),
              help="Local mode: AnalysisTemplate files or directories (default DIR/templates when it exists).")
@click.option("--log-level", type=click.Choice(sorted(LEVELS)), default="info", show_default=True)
def run(kubeconfig: str | None, context: str | None, namespace: str | None, prometheus: str | None, workers: int,
        leader_elect: bool | None, lease_namespace: str | None, lease_name: str, lease_duration: float,
        renew_deadline: float, retry_period: float, identity: str | None, listen: str, resync: float | None,
        time_scale: float, store: str | None, template_paths: tuple[str, ...], log_level: str) -> None:
    """Run the controller: watch rollouts and drive them until SIGTERM."""
    configure_logging(log_level)
    identity = identity or _default_identity()
    try:
        address = None if listen == "off" else parse_listen(listen)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    metrics = ControllerMetrics()
    elector: Any = None
    if store is not None:
        if leader_elect:
            raise click.UsageError("--leader-elect needs a cluster; with --store run one daemon per store")
        runtime = _local_runtime(store, template_paths, namespace, prometheus, workers, resync or 5.0, time_scale,
                                 metrics)
    else:
        if template_paths:
            raise click.UsageError("--templates is for local mode (--store); with a cluster templates are "
                                   "AnalysisTemplate objects")
        runtime, elector = _kube_runtime(kubeconfig, context, namespace, prometheus, workers,
                                         True if leader_elect is None else leader_elect, lease_namespace, lease_name,
                                         lease_duration, renew_deadline, retry_period, identity, resync or 300.0,
                                         time_scale, metrics)
    log.info("starting", identity=identity, mode="local" if store else "kubernetes",
             leader_election=elector is not None)
    try:
        asyncio.run(_main(runtime, address, metrics))
    except OSError as exc:
        raise click.ClickException(f"--listen {listen}: {exc.strerror or exc}") from None
    sys.exit(0)


def _kube_runtime(kubeconfig: str | None, context: str | None, namespace: str | None, prometheus: str | None,
                  workers: int, leader_elect: bool, lease_namespace: str | None, lease_name: str,
                  lease_duration: float, renew_deadline: float, retry_period: float, identity: str, resync: float,
                  time_scale: float, metrics: ControllerMetrics) -> tuple[Runtime, Any]:
    from analyzer.kube.capacity import KubeCapacity
    from analyzer.kube.client import KubeConfigError, api_client, default_namespace
    from analyzer.kube.events import KubeEvents
    from analyzer.kube.lease import LeaderElector
    from analyzer.kube.objects import KubeObjects
    from analyzer.kube.rollouts import KubeRolloutStore
    from analyzer.kube.templates import KubeTemplates

    try:
        api = api_client(kubeconfig, context)
        home = default_namespace(kubeconfig, context)
    except KubeConfigError as exc:
        raise click.UsageError(str(exc)) from None
    # Who wrote what is visible in the API server's audit log (and in our tests).
    api.user_agent = f"rollout-analyzer/{identity}"
    watched = None if namespace == "all" else (namespace or home)
    elector = None
    if leader_elect:
        try:
            elector = LeaderElector(api, lease_namespace or os.environ.get("POD_NAMESPACE") or home, lease_name,
                                    identity, lease_duration=lease_duration, renew_deadline=renew_deadline,
                                    retry_period=retry_period)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    allowed = elector.is_leader if elector is not None else (lambda: True)
    ctl = Controller(store=GuardedStore(KubeRolloutStore(api), allowed),
                     router_for=routers(GuardedObjects(KubeObjects(api), allowed)),
                     providers=default_providers(prometheus), templates=KubeTemplates(api),
                     capacity=KubeCapacity(api), events=_with_slack(KubeEvents(api, instance=identity)), time_scale=time_scale)
    options = RuntimeOptions(namespace=watched, workers=workers, resync=resync)
    return Runtime(ctl, options, elector=elector, metrics=metrics), elector


def _local_runtime(store_dir: str, template_paths: tuple[str, ...], namespace: str | None, prometheus: str | None,
                   workers: int, resync: float, time_scale: float, metrics: ControllerMetrics) -> Runtime:
    from analyzer.argo.errors import TemplateError
    from analyzer.local.events import LogEvents
    from analyzer.local.store import LocalRolloutStore, StoreError
    from analyzer.local.templates import LocalTemplates

    try:
        store = LocalRolloutStore(store_dir)
    except StoreError as exc:
        raise click.UsageError(f"--store {store_dir}: {exc}") from None
    paths = list(template_paths) or ([str(Path(store_dir) / "templates")] if (Path(store_dir) / "templates").is_dir() else [])
    try:
        templates = LocalTemplates(paths)
    except TemplateError as exc:
        raise click.UsageError(f"--templates: {exc}") from None
    ctl = Controller(store=store, router_for=routers(), providers=default_providers(prometheus),
                     templates=templates, events=_with_slack(LogEvents(store_dir)), time_scale=time_scale)
    options = RuntimeOptions(namespace=None if namespace in (None, "all") else namespace, workers=workers,
                             resync=resync)
    return Runtime(ctl, options, metrics=metrics)


async def _main(runtime: Runtime, address: tuple[str, int] | None, metrics: ControllerMetrics) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = {"count": 0}

    def on_signal(signum: int) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("second signal: exiting at once", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("signal received: shutting down", signal=signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    server = None
    if address is not None:
        server = HealthServer(address[0], address[1], ready=runtime.ready, healthy=runtime.healthy,
                              metrics=metrics.render, metrics_type=metrics.content_type)
        await server.start()
    try:
        await runtime.run(stop)
    finally:
        if server is not None:
            await server.close()
