"""The demo's model server and load generator, as real HTTP servers on loopback."""

from __future__ import annotations

import time

import httpx

from analyzer.demo.loadgen import LoadGenerator
from analyzer.demo.model_server import FEATURES, Fault, ModelServer, train


def test_training_learns_the_task() -> None:
    import numpy as np

    w = train(seed=5)
    rng = np.random.default_rng(99)
    x = rng.normal(size=(500, FEATURES))
    true_w = np.random.default_rng(5).normal(size=FEATURES)
    accuracy = ((x @ w > 0) == (x @ true_w > 0)).mean()
    assert accuracy > 0.9


def test_predict_metrics_and_bad_input() -> None:
    with ModelServer("v1", base_latency=0.001) as server:
        url = f"http://{server.addr}"
        r = httpx.post(f"{url}/predict", json={"features": [0.1] * FEATURES})
        assert r.status_code == 200 and r.json()["version"] == "v1" and 0 <= r.json()["score"] <= 1
        assert httpx.post(f"{url}/predict", json={"features": [1, 2]}).status_code == 400
        metrics = httpx.get(f"{url}/metrics").text
        assert 'http_requests_total{app="inference",code="200",version="v1"} 1.0' in metrics
        assert 'http_requests_total{app="inference",code="400",version="v1"} 1.0' in metrics
        assert "http_request_duration_seconds_bucket" in metrics


def test_fault_injects_errors_and_latency() -> None:
    with ModelServer("v2", base_latency=0.002, fault=Fault(error_rate=0.5, latency_factor=5)) as server:
        with httpx.Client() as c:
            codes = [c.get(f"http://{server.addr}/predict").status_code for _ in range(200)]
        assert 70 <= codes.count(500) <= 130
        p50 = server.registry.get_sample_value("http_request_duration_seconds_sum", {"app": "inference",
                                                                                     "version": "v2"}) / 200
        assert p50 > 0.005  # 5x the 2 ms base


def test_load_generator_holds_its_rate() -> None:
    with ModelServer("v1", base_latency=0.001) as server:
        gen = LoadGenerator(f"http://{server.addr}/predict", rps=100).start()
        time.sleep(2)
        gen.stop()
        assert 170 <= gen.codes[200] <= 230
