"""Outside Kubernetes, as a user would run it: `analyzer apply` a ModelRollout into the local
store, `analyzer run --store` drives a real HAProxy in front of two real model servers, and the
operator verbs (`get`, `promote`, `status`) work on the same store while the daemon runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import REPO, analyzer_cmd, run_cli

from analyzer.demo.model_server import ModelServer
from analyzer.local.store import LocalRolloutStore
from analyzer.localhaproxy import LocalHAProxy, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed (make test installs it)")


def manifest(haproxy: LocalHAProxy) -> dict[str, Any]:
    return {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
            "metadata": {"name": "inference", "namespace": "ml"},
            "spec": {"stable": {"host": "inference-v1"}, "canary": {"host": "inference-v2"},
                     "trafficRouting": {"haproxy": {"socket": str(haproxy.workdir / "admin.sock"),
                                                    "headerMap": str(haproxy.workdir / "header-routes.map")}},
                     "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": "1s"}}]}}


def test_local_daemon_with_cli_verbs_drives_haproxy(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    with ModelServer("v1") as v1, ModelServer("v2") as v2, LocalHAProxy(stable=v1.addr, canary=v2.addr) as haproxy:
        path = tmp_path / "rollout.yaml"
        path.write_text(yaml.safe_dump(manifest(haproxy)))
        applied = run_cli("apply", "-f", str(path), "--store", str(store_dir))
        assert applied.returncode == 0, applied.stderr
        assert "modelrollout ml/inference applied" in applied.stdout

        daemon = subprocess.Popen([*analyzer_cmd(), "run", "--store", str(store_dir), "--listen", "off",
                                   "--resync", "0.5", "--log-level", "warning"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
        try:
            router = haproxy.router()
            deadline = time.monotonic() + 30
            while router.canary_weight() != 20 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert router.canary_weight() == 20  # step 1, then the indefinite pause holds it
            time.sleep(1.5)
            got = run_cli("get", "rollout", "inference", "-n", "ml", "--store", str(store_dir), "-o", "json")
            assert got.returncode == 0, got.stderr
            assert '"phase": "Paused"' in got.stdout
            assert router.canary_weight() == 20

            promoted = run_cli("promote", "inference", "-n", "ml", "--store", str(store_dir))
            assert promoted.returncode == 0, promoted.stderr
            done = run_cli("status", "inference", "-n", "ml", "--store", str(store_dir), "--timeout", "60s")
            assert done.returncode == 0, done.stdout + done.stderr  # Healthy
            assert router.canary_weight() == 100
            st = LocalRolloutStore(store_dir).get("ml", "inference")["status"]
            assert st["phase"] == "Healthy" and st["weights"]["verified"] == 100
        finally:
            daemon.send_signal(signal.SIGTERM)
            out, err = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, err.decode()[-2000:]
        assert b"Traceback" not in err


def test_apply_refuses_an_invalid_manifest_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout",
                                   "metadata": {"name": "x"},
                                   "spec": {"stable": {"host": "a"}, "canary": {"host": "b"},
                                            "trafficRouting": {"haproxy": {"socket": "/tmp/s"}},
                                            "steps": [{"setWeight": 150}]}}))
    r = run_cli("apply", "-f", str(bad), "--store", str(tmp_path / "store"))
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "spec.steps[0].setWeight" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "store" / "default" / "x.json").exists()
