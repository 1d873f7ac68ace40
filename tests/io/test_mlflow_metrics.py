"""Metrics logged in batches: the same keys, values and steps as one call per value."""

from __future__ import annotations

from pathlib import Path

import mlflow
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset
from mlflow.tracking import MlflowClient

from mindkd.io.mlflow_metrics import BATCH, BatchedMetricsHistoryDataset


def _history(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in keys
    }


def test_a_batched_save_stores_what_one_call_per_value_stores(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = {f"m{i}": {"value": i / 7, "step": 0} for i in range(BATCH + 500)}  # two batches
    data["curve"] = [{"value": 0.5 + s / 100, "step": s} for s in range(1, 31)]
    client = MlflowClient()
    stored = []
    for dataset in (
        BatchedMetricsHistoryDataset(prefix="ihm.distill"),
        MlflowMetricsHistoryDataset(prefix="ihm.distill"),
    ):
        with mlflow.start_run() as run:
            dataset.save(data)
        stored.append(_history(client, run.info.run_id))
    assert stored[0] == stored[1]
    assert len(stored[0]) == BATCH + 501 and len(stored[0]["ihm.distill.curve"]) == 30


def test_it_loads_back_as_the_parent_does(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    dataset = BatchedMetricsHistoryDataset(prefix="los.distill")
    with mlflow.start_run():
        dataset.save({"a": {"value": 1.0, "step": 0}, "b": [{"value": 2.0, "step": 1}]})
        assert dataset.load() == {  # a one-value history loads as one dict, as the parent's
            "los.distill.a": {"value": 1.0, "step": 0},
            "los.distill.b": {"value": 2.0, "step": 1},
        }
