"""``make demo`` for now: the success-rate template run live against a local Prometheus.

A small generated workload (a prometheus_client exporter simulating ``inference-v1`` and
``inference-v2`` traffic) is scraped every second by a real Prometheus on loopback; the shipped
``templates/success-rate.yaml`` then runs through the real ``analyzer analyze`` command twice:
once while the canary is healthy (Successful) and once after it starts failing 8 % of its
requests (Failed). Intervals are divided by ``--speed`` so the demo takes about a minute.
The full canary demo (HAProxy, traffic steps, rollback) comes with a later issue.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from analyzer.demo.workload import Profile, Workload
from analyzer.localprom import LocalPrometheus, PrometheusNotInstalled

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "success-rate.yaml"
SPEED = "30"
WINDOW = "20s"


def _analyze(prom_url: str, title: str) -> int:
    print(f"\n=== {title} ===", flush=True)
    cmd = [sys.executable, "-m", "analyzer.cli", "analyze", str(TEMPLATE), "--prometheus", prom_url,
           "--arg", "canary-version=v2", "--arg", f"window={WINDOW}", "--speed", SPEED]
    print("$ analyzer " + " ".join(cmd[3:]), flush=True)
    return subprocess.call(cmd)


def main() -> int:
    versions = {"v1": Profile(rps=40, error_rate=0.001, latency=0.05),
                "v2": Profile(rps=40, error_rate=0.001, latency=0.06)}
    try:
        with Workload(versions=versions, app="inference", seed=42) as workload, \
                LocalPrometheus(scrape_targets=[workload.target]) as prom:
            print(f"workload exporter on {workload.target}, Prometheus on {prom.url}")
            print("waiting for the first scrapes...", flush=True)
            prom.wait_for('sum(rate(inference_requests_total{version="v2"}[20s])) > 0', timeout=60)
            healthy = _analyze(prom.url, "canary v2 healthy (0.1 % errors): expect Successful, exit 0")
            workload.set_profile("v2", Profile(rps=40, error_rate=0.08, latency=0.06))
            time.sleep(5)  # let the bad requests reach a few scrapes before measuring
            failing = _analyze(prom.url, "canary v2 now failing 8 % of requests: expect Failed, exit 1")
    except PrometheusNotInstalled as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    print(f"\nexit codes: healthy run {healthy}, failing run {failing}")
    return 0 if (healthy, failing) == (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
