"""kubectl's connection options for the rollout verbs, the store they open, and one-line errors.

``-n/--namespace``, ``--context`` and ``--kubeconfig`` mean what they mean to kubectl (the
namespace defaults to the context's). ``--store DIR`` uses the local file store instead of a
cluster (``analyzer.local``), for machines without Kubernetes.

Every failure the user can do something about (no cluster, a bad kubeconfig, an unknown context,
a rollout that does not exist, an API server that answers an error) ends as one line on stderr
and exit 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from analyzer.ports import NotFound, RolloutStore, WriteConflict

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def connection_options(f: F) -> F:
    """The options every rollout verb takes, gathered into one ``conn: Connection`` argument."""
    f = click.option("--store", "store_dir", type=click.Path(file_okay=False), default=None,
                     help="Use the local rollout store in DIR instead of Kubernetes.")(f)
    f = click.option("--kubeconfig", default=None, metavar="FILE",
                     help="Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")(f)
    f = click.option("--context", default=None, metavar="NAME", help="The kubeconfig context to use.")(f)
    f = click.option("-n", "--namespace", default=None, metavar="NS",
                     help="Namespace (default: the context's namespace, else 'default').")(f)
    return f


@dataclass(frozen=True)
class Connection:
    namespace: str | None
    context: str | None
    kubeconfig: str | None
    store_dir: str | None

    @classmethod
    def from_options(cls, kw: dict[str, Any]) -> Connection:
        return cls(kw.pop("namespace"), kw.pop("context"), kw.pop("kubeconfig"), kw.pop("store_dir"))

    def open(self) -> tuple[RolloutStore, str]:
        """The store and the namespace to use. Errors end the command (exit 2)."""
        with errors():
            if self.store_dir is not None:
                if self.context or self.kubeconfig:
                    fail("--store uses local files; --context and --kubeconfig do not apply")
                from analyzer.local.store import LocalRolloutStore

                return LocalRolloutStore(self.store_dir), self.namespace or "default"
            try:
                return self._open_kube()
            except _error_types():
                raise
            except Exception as exc:  # e.g. a kubeconfig that is not YAML: the loader's own exceptions
                where = self.kubeconfig or "$KUBECONFIG or ~/.kube/config"
                fail(f"kubeconfig {where}: cannot load it: {_one_line(exc)}")
        raise AssertionError("unreachable")  # errors() exits on any exception it knows

    def _open_kube(self) -> tuple[RolloutStore, str]:
        from analyzer.kube.client import api_client, default_namespace
        from analyzer.kube.rollouts import KubeRolloutStore

        namespace = self.namespace or default_namespace(self.kubeconfig, self.context)
        return KubeRolloutStore(api_client(self.kubeconfig, self.context)), namespace


def actor() -> str:
    """Who the controller's events and logs name as the requester."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name (e.g. a container with an unknown uid)
        return "cli"


def _error_types() -> tuple[type[BaseException], ...]:
    """Only modules already imported can have raised (and the kubernetes client is slow to load)."""
    from analyzer.controller.actions import ActionError

    types: list[type[BaseException]] = [NotFound, WriteConflict, OSError, ActionError]
    kube_errors, local_store = sys.modules.get("analyzer.kube.errors"), sys.modules.get("analyzer.local.store")
    if kube_errors is not None:
        types.append(kube_errors.KubeError)
    if local_store is not None:
        types.append(local_store.StoreError)
    return tuple(types)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn the failures a user can act on into one line and exit 2."""
    try:
        yield
    except _error_types() as exc:
        fail(_one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    code = getattr(exc, "code", None)
    if code == 404 and "modelrollouts" in text and "list " in text:
        text += " (is the ModelRollout CRD installed? kubectl apply -f deploy/crd/modelrollout.yaml)"
    return text
