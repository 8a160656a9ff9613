"""Start a throwaway real Prometheus on loopback, for tests and the local demo.

Uses Debian's ``prometheus``/``promtool`` binaries (``apt-get install -y --no-install-recommends
prometheus``). Each instance gets a free 127.0.0.1 port and its own temp data dir, so it never
collides with a system Prometheus or with other instances. Historical data is backfilled with
``promtool`` *before* start because Prometheus only loads blocks at start-up (or at its 1-minute
reload). The config is written as JSON, which Prometheus reads as YAML: no YAML library needed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

INSTALL_HINT = "install it with: apt-get install -y --no-install-recommends prometheus"


class PrometheusNotInstalled(RuntimeError):
    """The ``prometheus`` or ``promtool`` binary is not on PATH."""


class LocalPrometheusError(RuntimeError):
    """Prometheus could not be prepared, started, or did not produce the awaited data."""


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PrometheusNotInstalled(f"`{name}` not found on PATH; {INSTALL_HINT}")
    return path


def prometheus_available() -> bool:
    return shutil.which("prometheus") is not None and shutil.which("promtool") is not None


def free_port() -> int:
    # Racy by nature (the port is free when we look); start() retries if it was taken meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPrometheus:
    """A real Prometheus process on ``127.0.0.1:<free port>``; use as a context manager.

    ``openmetrics``: OpenMetrics text (ending in ``# EOF``, timestamps in seconds) backfilled into
    the data dir before start; query it with an explicit ``time``/``start``/``end``.
    ``scrape_targets``: ``host:port`` targets scraped every ``scrape_interval`` under job ``job``.
    ``extra_config``: top-level config keys merged in (e.g. ``remote_read``).
    """

    def __init__(
        self,
        *,
        openmetrics: str | None = None,
        scrape_targets: Sequence[str] = (),
        job: str = "app",
        scrape_interval: str = "1s",
        extra_config: Mapping[str, Any] | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self._openmetrics = openmetrics
        self._scrape_targets = list(scrape_targets)
        self._job = job
        self._scrape_interval = scrape_interval
        self._extra_config = dict(extra_config or {})
        self._ready_timeout = ready_timeout
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._client: httpx.Client | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if self._proc is None:
            raise LocalPrometheusError("LocalPrometheus is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalPrometheus:
        if self._proc is not None:
            return self
        prometheus = find_binary("prometheus")
        promtool = find_binary("promtool") if self._openmetrics is not None else None
        self._tmp = Path(tempfile.mkdtemp(prefix="localprom-"))
        try:
            data_dir = self._tmp / "data"
            data_dir.mkdir()
            if promtool is not None and self._openmetrics is not None:
                self._backfill(promtool, self._openmetrics, data_dir)
            config_path = self._tmp / "prometheus.yml"
            config_path.write_text(json.dumps(self._config(), indent=2))
            self._launch(prometheus, config_path, data_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM to this PID only: Prometheus shuts down cleanly in ~1 s
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def log_tail(self, chars: int = 2000) -> str:
        if self._tmp is None:
            return ""
        log = self._tmp / "prometheus.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    # -- queries ---------------------------------------------------------------------------

    def query(self, query: str, at: float | None = None) -> Any:
        """Instant query; returns the ``data`` of a successful answer (raises otherwise)."""
        params: dict[str, str] = {"query": query}
        if at is not None:
            params["time"] = repr(float(at))
        if self._client is None:
            # One client for all polls: each new httpx client costs ~50 ms of TLS setup.
            self._client = httpx.Client(timeout=10)
        response = self._client.get(f"{self.url}/api/v1/query", params=params)
        body = response.json()
        if body.get("status") != "success":
            raise LocalPrometheusError(
                f"query {query!r} failed: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def wait_for(self, query: str, timeout: float = 15.0, interval: float = 0.1) -> list[Any]:
        """Polls until ``query`` returns a non-empty result (e.g. ``up{job="app"} == 1``).

        Scraped data shows up only ~5.5 s after start (discovery tick), so callers budget for that
        instead of sleeping a fixed time.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                result = self.query(query)["result"]
                if result:
                    return list(result) if isinstance(result, list) else [result]
                last = "empty result"
            except (httpx.HTTPError, LocalPrometheusError, ValueError) as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise LocalPrometheusError(
                    f"{query!r} returned no data within {timeout}s ({last}); log tail:\n{self.log_tail()}"
                )
            time.sleep(interval)

    # -- internals -------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self._scrape_interval,
                "evaluation_interval": self._scrape_interval,
            },
            "scrape_configs": [],
        }
        if self._scrape_targets:
            config["scrape_configs"] = [
                {"job_name": self._job, "static_configs": [{"targets": self._scrape_targets}]}
            ]
        config.update(self._extra_config)
        return config

    def _backfill(self, promtool: str, openmetrics: str, data_dir: Path) -> None:
        assert self._tmp is not None
        source = self._tmp / "backfill.om"
        source.write_text(openmetrics)
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise LocalPrometheusError(
                f"promtool backfill failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}"
            )
        source.unlink()

    def _launch(self, prometheus: str, config_path: Path, data_dir: Path) -> None:
        assert self._tmp is not None
        for _attempt in range(3):
            self.port = free_port()
            self._log_file = open(
                self._tmp / "prometheus.log", "ab"
            )  # closed in stop(): lives as long as the process
            self._proc = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    # Retention counts from the newest block, not the wall clock: keep fixed-epoch backfill.
                    "--storage.tsdb.retention.time=100y",
                ],
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            in_use = "address already in use" in self.log_tail().lower()
            self._terminate_quietly()
            if not in_use:
                break
        raise LocalPrometheusError(f"prometheus did not become ready; log tail:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self._ready_timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                try:
                    if client.get(f"http://127.0.0.1:{self.port}/-/ready").status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        return False

    def _terminate_quietly(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
