"""``analyzer serve``: run the HTTP service on uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from analyzer.server.app import Settings, build_app
from analyzer.server.verdict import default_policies_dir

TOKEN_ENV = "ANALYZER_TOKEN_FILE"
DEFAULT_POLICIES = default_policies_dir()


def _bad_input(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(2)


def read_token(path: Path, source: str) -> str:
    """The bearer token: the file's content without surrounding whitespace (a Secret mounted as a file)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        _bad_input(f"{source}: cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}")
    if len(token) < 16:
        _bad_input(f"{source}: {path}: the token must have at least 16 characters")
    return token


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        _bad_input(f"--listen: expected HOST:PORT, e.g. 127.0.0.1:8080, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("serve")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to listen on.")
@click.option("--prometheus", "prometheus_url", required=True, help="Prometheus base URL the verdicts read.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"File holding the bearer token clients must send (default: ${TOKEN_ENV}).")
@click.option("--no-auth", is_flag=True, help="Serve without authentication (local experiments only).")
@click.option("--policies", "policies_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_POLICIES, show_default=True, help="Directory of named judge policies (*.yaml).")
@click.option("--no-inline-policies", is_flag=True, help="Refuse inline policies: callers may only name one.")
@click.option("--cache-ttl", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds a verdict is reused for identical requests.")
@click.option("--max-body", type=click.IntRange(min=256), default=64 * 1024, show_default=True,
              help="Largest accepted request body, in bytes.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Slack acts on rollouts in this local store instead of Kubernetes.")
@click.option("--kubeconfig", default=None, help="Kubeconfig for the Slack actions (default: kubectl's rules).")
@click.option("--context", default=None, help="Kubeconfig context for the Slack actions.")
def serve(listen: str, prometheus_url: str, token_file: Path | None, no_auth: bool, policies_dir: Path,
          no_inline_policies: bool, cache_ttl: float, max_body: int, store_dir: Path | None,
          kubeconfig: str | None, context: str | None) -> None:
    """Serve statistical canary verdicts for Argo Rollouts' web metric provider (docs/web-provider.md)."""
    import uvicorn

    if not prometheus_url.startswith(("http://", "https://")):
        _bad_input(f"--prometheus: expected an http(s) URL, got {prometheus_url!r}")
    host, port = parse_listen(listen)
    token: str | None = None
    if token_file is not None:
        token = read_token(token_file, "--token-file")
    elif os.environ.get(TOKEN_ENV):
        token = read_token(Path(os.environ[TOKEN_ENV]), f"${TOKEN_ENV}")
    elif not no_auth:
        _bad_input(f"serve: give --token-file FILE (or ${TOKEN_ENV}); --no-auth serves without authentication")
    if token is not None and no_auth:
        _bad_input("serve: --no-auth and a token file contradict each other")
    if not policies_dir.is_dir():
        _bad_input(f"--policies: {policies_dir} is not a directory")
    settings = Settings(prometheus_url=prometheus_url, token=token, policies_dir=policies_dir,
                        cache_ttl=cache_ttl, max_body_bytes=max_body, inline_policies=not no_inline_policies)
    if no_auth:
        click.echo("serve: WARNING: no authentication; anyone who reaches the port can query", err=True)
    routes, notifier = _slack(store_dir, kubeconfig, context)
    try:
        uvicorn.run(build_app(settings, extra_routes=routes), host=host, port=port, log_level="warning",
                    access_log=False, server_header=False)
    finally:
        if notifier is not None:
            notifier.close()


def _slack(store_dir: Path | None, kubeconfig: str | None, context: str | None) -> tuple[list[Any], Any]:
    """The Slack endpoints when ``SLACK_SIGNING_SECRET`` is set (docs/slack.md), acting on the
    local store or on ModelRollouts in the cluster, audited as events there."""
    if not (os.environ.get("SLACK_SIGNING_SECRET") or "").strip():  # a Secret holding only a newline: off
        return [], None
    from analyzer.server.slack import SlackConfigError, slack_from_env

    try:
        if store_dir is not None:
            from analyzer.local.events import LogEvents
            from analyzer.local.store import LocalRolloutStore

            store: Any = LocalRolloutStore(store_dir)
            audit: Any = LogEvents(store_dir)
        else:
            from analyzer.kube.client import api_client
            from analyzer.kube.events import KubeEvents
            from analyzer.kube.rollouts import KubeRolloutStore

            api = api_client(kubeconfig, context)
            store, audit = KubeRolloutStore(api), KubeEvents(api)
        return slack_from_env(store, audit)
    except SlackConfigError as exc:
        _bad_input(f"serve: Slack: {exc}")
    except Exception as exc:  # no cluster, unreadable store: say which and stop
        _bad_input(f"serve: Slack actions need a rollout store: {exc}")
