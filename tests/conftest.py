"""Shared fixtures: every test runs with telemetry off and MLflow pointed at its own tmp store."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point MLflow at a throwaway sqlite store and leave no active run behind."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # a Kedro session earlier in the process may have set the experiment and the global URI
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(uri)
        fluent = mlflow.tracking.fluent
        if hasattr(fluent, "_active_experiment_id"):
            monkeypatch.setattr(fluent, "_active_experiment_id", None)
    yield

    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
