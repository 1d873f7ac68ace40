"""One demo export per test session (``demo_export.SESSION_CONFIG``), and its files as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_export import SESSION_CONFIG, RawExport

from mindkd.demo import generate


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate(root, SESSION_CONFIG)
    return root


@pytest.fixture(scope="session")
def raw(demo_root: Path) -> RawExport:
    return RawExport(demo_root)
