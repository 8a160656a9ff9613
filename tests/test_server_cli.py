"""`analyzer serve` as a user runs it: a real subprocess listening on loopback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cli_helpers import REPO, analyzer_cmd, run_cli
from test_server_verdict import GOOD, STABLE, START, judge_prom, policies_dir

from analyzer.localprom import LocalPrometheus, free_port

__all__ = ["judge_prom", "policies_dir"]


@pytest.mark.prometheus
def test_serve_answers_with_a_token_from_the_env_file(judge_prom: LocalPrometheus, policies_dir: Path,
                                                      tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-long-enough-test-token\n")
    port = free_port()
    env = {**os.environ, "ANALYZER_TOKEN_FILE": str(token)}
    process = subprocess.Popen([*analyzer_cmd(), "serve", "--listen", f"127.0.0.1:{port}", "--prometheus",
                                judge_prom.url, "--policies", str(policies_dir)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        body = {"policy": "judge-test", "start": START, "canaryHash": GOOD, "stableHash": STABLE}
        answer = httpx.post(url + "/api/v1/verdict", json=body,
                            headers={"Authorization": "Bearer a-long-enough-test-token"})
        # Real clock, years after the backfilled start: evaluated at start + horizon.
        assert answer.status_code == 200 and answer.json()["verdict"] == "pass"
        assert httpx.post(url + "/api/v1/verdict", json=body).status_code == 401
        assert httpx.get(url + "/readyz").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_refuses_bad_setups(tmp_path: Path) -> None:
    done = run_cli("serve", "--prometheus", "http://127.0.0.1:9")
    assert done.returncode == 2 and "give --token-file FILE" in done.stderr
    done = run_cli("serve", "--prometheus", "http://127.0.0.1:9", "--token-file", str(tmp_path / "missing"))
    assert done.returncode == 2 and "cannot read token file" in done.stderr and "Traceback" not in done.stderr
    short = tmp_path / "short"
    short.write_text("abc")
    done = run_cli("serve", "--prometheus", "http://127.0.0.1:9", "--token-file", str(short))
    assert done.returncode == 2 and "at least 16 characters" in done.stderr
    done = run_cli("serve", "--prometheus", "127.0.0.1:9", "--no-auth")
    assert done.returncode == 2 and "--prometheus: expected an http(s) URL" in done.stderr
    done = run_cli("serve", "--prometheus", "http://127.0.0.1:9", "--no-auth", "--listen", "8080")
    assert done.returncode == 2 and "--listen: expected HOST:PORT" in done.stderr
