"""Run the installed ``analyzer`` command the way a user does (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def analyzer_cmd() -> list[str]:
    script = Path(sys.executable).parent / "analyzer"
    return [str(script)] if script.exists() else [sys.executable, "-m", "analyzer.cli"]


def run_cli(*args: str, timeout: float = 120, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*analyzer_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, input=input_text)
