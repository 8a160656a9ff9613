"""A throwaway real HAProxy on loopback (Debian's package), for tests and the local demo."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from analyzer.localprom import free_port
from analyzer.routers.haproxy import HAProxyError, HAProxyRouter, HAProxyTarget, RuntimeAPI, config


class HAProxyNotInstalled(RuntimeError):
    def __init__(self) -> None:
        super().__init__("haproxy is not on PATH: install it with `apt-get install -y haproxy` (make test does)")


def haproxy_available() -> bool:
    return shutil.which("haproxy") is not None


class LocalHAProxy:
    """Starts ``haproxy -db`` in front of a stable and a canary server; stops it on exit."""

    def __init__(self, stable: str, canary: str, *, metrics: bool = False, ready_timeout: float = 10.0) -> None:
        self.stable, self.canary = stable, canary
        self.metrics = metrics
        self.ready_timeout = ready_timeout
        self.port = 0
        self.metrics_port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workdir(self) -> Path:
        assert self._dir is not None, "not started"
        return self._dir

    def router(self) -> HAProxyRouter:
        return HAProxyRouter(RuntimeAPI(self.workdir / "admin.sock"),
                             HAProxyTarget(header_map=str(self.workdir / "header-routes.map")))

    def start(self) -> LocalHAProxy:
        binary = shutil.which("haproxy")
        if binary is None:
            raise HAProxyNotInstalled()
        self._dir = Path(tempfile.mkdtemp(prefix="analyzer-haproxy-"))
        (self._dir / "header-routes.map").write_text("")
        self.port = free_port()
        self.metrics_port = free_port() if self.metrics else 0
        cfg = config(listen=f"127.0.0.1:{self.port}", stable=self.stable, canary=self.canary,
                     admin_socket=self._dir / "admin.sock", header_map=self._dir / "header-routes.map",
                     metrics_listen=f"127.0.0.1:{self.metrics_port}" if self.metrics else None)
        (self._dir / "haproxy.cfg").write_text(cfg)
        check = subprocess.run([binary, "-c", "-q", "-f", str(self._dir / "haproxy.cfg")], capture_output=True, text=True)
        if check.returncode != 0:
            raise HAProxyError(f"generated haproxy.cfg is invalid: {check.stderr.strip()}")
        log = open(self._dir / "haproxy.log", "wb")  # noqa: SIM115 - kept open for the process' life
        self._proc = subprocess.Popen([binary, "-db", "-f", str(self._dir / "haproxy.cfg")], stdout=log,
                                      stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        api = RuntimeAPI(self.workdir / "admin.sock")
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise HAProxyError(f"haproxy exited at start: {self.log_tail()}")
            try:
                last = api.command("show servers state be_app")
                # srv_op_state (6th column) is 2 when a server is UP: wait for both.
                states = [line.split()[5] for line in last.splitlines()[2:] if len(line.split()) > 5]
                if len(states) == 2 and all(s == "2" for s in states):
                    return
            except HAProxyError:
                pass
            time.sleep(0.05)
        self.stop()
        raise HAProxyError(f"haproxy not ready after {self.ready_timeout}s (servers up?): {last[-300:]}")

    def log_tail(self) -> str:
        try:
            return (self.workdir / "haproxy.log").read_text(errors="replace")[-800:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalHAProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
