"""Session fixtures: one small demo export, and the data stages run once on it through Kedro."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kedro_harness import ProjectRun, make_project_run

DEMO_PATIENTS = 240


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mindkd.demo.config import DemoConfig
    from mindkd.demo.generator import generate

    root = tmp_path_factory.mktemp("demo")
    generate(root, DemoConfig(patients=DEMO_PATIENTS, seed=7))
    return root


@pytest.fixture(scope="session")
def manifest(demo_export: Path) -> dict[str, Any]:
    return json.loads((demo_export / "_truth" / "manifest.json").read_text())


@pytest.fixture(scope="session")
def data_run(demo_export: Path, tmp_path_factory: pytest.TempPathFactory) -> ProjectRun:
    """ehr + cxr + pairing run once through a real KedroSession (catalog, hooks, MLflow)."""
    import os

    os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
    project = make_project_run(
        tmp_path_factory.mktemp("project"),
        demo_export / "mimic-iv",
        demo_export / "mimic-cxr-jpg",
    )
    project.run(["ehr", "cxr", "pairing"])
    return project
