"""Load on the verdict endpoint (`analyzer serve`), the way Argo's web provider calls it.

Targets (issue #6): >= 500 requests/s with a warm cache, p99 < 50 ms, on 2 cores.

Setup: a real Prometheus (Debian's package) holding 45 minutes of backfilled per-pod counters and
histograms for a stable and a canary arm; `analyzer serve` in its own process (one uvicorn worker);
this process is the client (asyncio streams, N concurrent keep-alive connections). Both share the machine.

* warm: the same request again and again, answered from the verdict cache;
* cold: every request has a different start, so every one is computed from Prometheus (the
  judge's queries: raw samples per series and arm since the start, then the statistics).

Prints a table; exits 1 if a warm target is missed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from analyzer.localprom import LocalPrometheus, free_port, prometheus_available

EPOCH = 1704067200
START = EPOCH + 600
SCRAPE = 15
BOUNDS = ("0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
TOKEN = "benchmark-token-0123456789abcdef"
POLICY = """
name: bench
alpha: 0.05
horizon: 30m
step: 15s
metrics:
  - {name: errors, type: error-rate, requests: http_requests_total, errors: 'http_requests_total{status=~"5.."}'}
  - {name: latency, type: latency, buckets: http_request_duration_seconds_bucket, unit: s, warmup: 2m}
"""
WARM_TARGET_RPS, WARM_TARGET_P99_MS = 500.0, 50.0


def openmetrics() -> str:
    rng = np.random.default_rng(3)
    times = np.arange(EPOCH, START + 2100, SCRAPE)
    edges = np.array([float(b) for b in BOUNDS])
    requests, buckets = [], []
    for arm, pods, rps, error_rate in (("stable", 3, 30, 0.005), ("canary", 1, 10, 0.006)):
        for pod in range(pods):
            n = rng.poisson(rps * SCRAPE, len(times))
            errors = rng.binomial(n, error_rate)
            ok = np.cumsum(n - errors)
            bad = np.cumsum(errors)
            lat = [rng.lognormal(math.log(0.1), 0.5, k) for k in n - errors]
            hist = np.cumsum([[int((x <= e).sum()) for e in edges] for x in lat], axis=0)
            labels = f'rollouts_pod_template_hash="{arm}",pod="{arm}-{pod}"'
            for status, values in (("200", ok), ("500", bad)):
                requests += [f'http_requests_total{{{labels},status="{status}"}} {v} {t}'
                             for v, t in zip(values, times, strict=True)]
            for k, le in enumerate(BOUNDS):
                buckets += [f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {v} {t}'
                            for v, t in zip(hist[:, k], times, strict=True)]
    return ("# TYPE http_requests counter\n" + "\n".join(requests) + "\n# TYPE http_request_duration_seconds "
            "histogram\n" + "\n".join(buckets) + "\n# EOF\n")


def body(start: float) -> dict[str, object]:
    return {"policy": "bench", "start": start, "canaryHash": "canary", "stableHash": "stable"}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _request(port: int, item: dict[str, object]) -> bytes:
    payload = json.dumps(item).encode()
    return (f"POST /api/v1/verdict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


async def load(port: int, bodies: list[dict[str, object]], concurrency: int) -> tuple[float, np.ndarray]:
    """(requests/s, latencies in ms) over ``concurrency`` keep-alive connections; every answer must be
    a 200 verdict. A minimal HTTP/1.1 client (prebuilt requests, asyncio streams) so that the
    numbers measure the service rather than a client library sharing its 2 cores."""
    latencies: list[float] = []
    queue = iter([_request(port, b) for b in bodies])

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
                began = time.perf_counter()
                status, answer = await _exchange(reader, writer, request)
                latencies.append((time.perf_counter() - began) * 1000)
                if status != 200 or b'"verdict"' not in answer:
                    raise SystemExit(f"unexpected HTTP {status}: {answer[:300]!r}")
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - began), np.asarray(latencies)


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("analyzer serve exited")
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit("analyzer serve did not start")


def main() -> int:
    if not prometheus_available():
        print("prometheus/promtool not on PATH (apt-get install prometheus)", file=sys.stderr)
        return 2
    concurrency = 16
    with tempfile.TemporaryDirectory() as tmp, LocalPrometheus(openmetrics=openmetrics()) as prom:
        folder = Path(tmp)
        (folder / "bench.yaml").write_text(POLICY)
        (folder / "token").write_text(TOKEN)
        port = free_port()
        analyzer = Path(sys.executable).parent / "analyzer"
        cmd = [str(analyzer)] if analyzer.exists() else [sys.executable, "-m", "analyzer.cli"]
        process = subprocess.Popen([*cmd, "serve", "--listen", f"127.0.0.1:{port}", "--prometheus", prom.url,
                                    "--token-file", str(folder / "token"), "--policies", str(folder),
                                    "--cache-ttl", "600"])
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process)
            asyncio.run(load(port, [body(START)] * 200, concurrency))  # warm up connections and the cache
            warm_rps, warm = asyncio.run(load(port, [body(START)] * 5000, concurrency))
            cold_bodies = [body(START + i * 0.001) for i in range(200)]
            cold_rps, cold = asyncio.run(load(port, cold_bodies, concurrency))
            serial_rps, serial = asyncio.run(load(port, [body(START + 1 + i * 0.001) for i in range(50)], 1))
        finally:
            process.terminate()
            process.wait(timeout=10)
    rows = [("warm (cache hit)", concurrency, len(warm), warm_rps, warm),
            ("cold (Prometheus-bound)", concurrency, len(cold), cold_rps, cold),
            ("cold, one at a time", 1, len(serial), serial_rps, serial)]
    print(f"web provider load, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, server and client on the same machine")
    print(f"{'phase':<26}{'conc.':>6}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, conc, n, rps, lat in rows:
        print(f"{name:<26}{conc:>6}{n:>10}{rps:>10.0f}{np.percentile(lat, 50):>9.1f}{np.percentile(lat, 99):>9.1f}")
    warm_p99 = float(np.percentile(warm, 99))
    ok = warm_rps >= WARM_TARGET_RPS and warm_p99 < WARM_TARGET_P99_MS
    print(f"targets: warm >= {WARM_TARGET_RPS:g} req/s and p99 < {WARM_TARGET_P99_MS:g} ms: "
          f"{'met' if ok else 'MISSED'} ({warm_rps:.0f} req/s, p99 {warm_p99:.1f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
