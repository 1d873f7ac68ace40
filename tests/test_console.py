"""A Kedro session prints no warning of its own making, nor kedro-mlflow's pyfunc type-hint one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kedro_starts_without_warnings() -> None:
    kedro = Path(sys.executable).parent / "kedro"
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    result = subprocess.run(
        [str(kedro), "registry", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = result.stdout + result.stderr
    assert "__default__" in console
    assert "Warning" not in console and "WARNING" not in console, console[-3000:]
