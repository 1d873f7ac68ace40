"""Serving tests: one torch thread, and ``sys.path`` restored after MLflow prepends a loaded
model's code folder to it."""

from __future__ import annotations

import sys

import pytest

from torch_threads import one_torch_thread  # noqa: F401 - autouse fixture for this folder


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
