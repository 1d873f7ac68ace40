"""The house's layering and the library's types, checked on every CI run.

``lint-imports`` enforces the contracts in ``pyproject.toml`` (the library never imports the
pipelines; pipelines never import each other; data below models below training below evaluation
and tracking below serving). ``mypy`` checks the library modules listed under ``[tool.mypy]``.
Both were seen to fail: an import of ``mindkd.pipelines.distill.params`` in
``mindkd.training.spec`` broke the first contract, and a ``str`` passed where the ensemble rule's
``Literal`` is expected failed mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool
    if not executable.exists():
        pytest.fail(f"{tool} is not installed in {BIN}: `pip install -e '.[test]'`")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [str(executable), *args], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )


def test_import_contracts_are_kept() -> None:
    result = _run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.slow
def test_the_library_type_checks() -> None:
    result = _run("mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr
