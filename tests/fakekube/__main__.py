"""``python -m fakekube --port N --crds DIR...`` (with ``tests/`` on PYTHONPATH).

Prints ``FAKEKUBE READY <url>`` on stdout once it serves, then runs until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .fake import DEFAULT_CRDS_DIR, DEFAULT_NAMESPACES, DEFAULT_TOKEN, FakeKube


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fakekube", description="Fake Kubernetes API server for tests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = a free port (printed in the READY line)")
    p.add_argument("--crds", nargs="*", default=[str(DEFAULT_CRDS_DIR)], help="CRD YAML files or directories")
    p.add_argument("--kubeconfig", help="write a kubeconfig for this server to this path")
    p.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token clients must send")
    p.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    p.add_argument("--namespace", action="append", default=[], help="extra namespace to create (repeatable)")
    p.add_argument("--manifests", nargs="*", default=[], help="YAML files whose objects are created at start")
    p.add_argument("--history-limit", type=int, default=10_000, help="watch history window in events")
    p.add_argument("--bookmark-interval", type=float, default=1.0)
    p.add_argument("--no-audit", action="store_true", help="do not keep the audit log of every write (long benchmarks)")
    p.add_argument("--istio-webhook", action="store_true", help="deny negative/zero-sum VirtualService weights like istiod")
    p.add_argument("--watch-timeout", type=float, default=1800.0, help="default watch duration without timeoutSeconds")
    args = p.parse_args(argv)

    kube = FakeKube(args.crds, namespaces=list(DEFAULT_NAMESPACES) + args.namespace, host=args.host, port=args.port,
                    token=None if args.no_auth else args.token, history_limit=args.history_limit,
                    bookmark_interval=args.bookmark_interval, default_watch_timeout=args.watch_timeout,
                    audit=not args.no_audit, istio_webhook_enabled=args.istio_webhook)
    for m in args.manifests:
        kube.load_manifests(m)
    kube.start()
    if args.kubeconfig:
        kube.write_kubeconfig(args.kubeconfig)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"FAKEKUBE READY {kube.url}", flush=True)
    stop.wait()
    kube.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
