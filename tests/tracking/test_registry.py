"""Registering the best student of a task: runs on a tmp sqlite store (the autouse fixture of
``tests/conftest.py``), models logged through the catalog's ``StudentModelDataset``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from mindkd.serving import StudentPyfunc
from mindkd.serving.dataset import StudentModelDataset
from mindkd.tracking.registry import (
    ALIAS,
    MODEL_ID_TAG,
    RegistryError,
    find_best,
    metric_key,
    metric_mode,
    model_name,
    register_best,
)
from mindkd.tracking.runs import TAG_EVALUATED
from tiny_student import IHM, stays, student_card, trained_weights

METRIC = "ihm.distill.mind.best/val/auroc"
LOSS_METRIC = "ihm.distill.mind.best/val/loss"
CHAMPION = "models:/mindkd-ihm-student@champion"


@pytest.fixture(autouse=True)
def _one_thread_and_own_sys_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))  # a loaded model prepends its code folder
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    return student_card(IHM)


def _run(
    root: Path,
    experiment: str,
    metrics: dict[str, float],
    student: StudentPyfunc | None = None,
    *,
    status: str = "FINISHED",
    evaluated: bool = True,
) -> str:
    """A finished (or failed) run with ``metrics`` and, when given, the student logged as the
    distill pipeline logs it; ``evaluated``: the completion mark the hook sets after the test
    evaluation."""
    if mlflow.get_experiment_by_name(experiment) is None:  # artifacts in tmp, not ./mlruns
        mlflow.create_experiment(experiment, (root / experiment).as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        if evaluated:
            mlflow.set_tag(TAG_EVALUATED, "true")
        if student is not None:
            StudentModelDataset(name=f"{student.spec.task}_mind_student").save(student)
    if status != "FINISHED":
        MlflowClient().set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def test_the_best_finished_run_by_val_metric_is_registered_as_champion(
    card: dict[str, Any], tmp_path: Path
) -> None:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    students = {seed: StudentPyfunc(card, trained_weights(card, seed)) for seed in range(4)}
    # the base experiment held the runs of both tasks before runs were split per task
    oldest = _run(tmp_path, "mindkd", {METRIC: 0.70, LOSS_METRIC: 0.2}, students[0])
    better = _run(
        tmp_path,
        "mindkd-ihm",
        {METRIC: 0.80, LOSS_METRIC: 0.3, "ihm.distill.mind.full.routed.auroc": 0.5},
        students[1],
    )
    _run(
        tmp_path,
        "mindkd-ihm",
        {METRIC: 0.75, LOSS_METRIC: 0.4, "ihm.distill.mind.full.routed.auroc": 0.99},
        students[2],
    )
    _run(tmp_path, "mindkd-ihm", {METRIC: 0.95}, students[3], status="FAILED")
    # FINISHED but never evaluated (an interruption recorded FINISHED before the completion mark)
    _run(tmp_path, "mindkd-ihm", {METRIC: 0.97}, students[3], evaluated=False)
    _run(tmp_path, "mindkd-ihm", {METRIC: 0.99})  # no pyfunc student logged: skipped
    _run(tmp_path, "mindkd-pheno", {"pheno.distill.mind.best/val/auroc": 0.99}, students[3])

    with pytest.MonkeyPatch.context() as elsewhere:  # as from the CLI: MLflow's globals elsewhere
        other = f"sqlite:///{tmp_path / 'elsewhere.db'}"
        elsewhere.setenv("MLFLOW_TRACKING_URI", other)
        mlflow.set_tracking_uri(other)
        version = register_best("ihm", uri)
    mlflow.set_tracking_uri(uri)

    assert version.run_id == better and version.aliases == [ALIAS]
    assert version.tags["selected_by"] == METRIC and float(version.tags["selected_value"]) == 0.8
    assert version.tags[MODEL_ID_TAG] == find_best("ihm", uri).model_id
    assert find_best("ihm", uri, "best/val/loss").run_id == oldest  # a loss: lowest wins
    assert version.source.startswith((tmp_path / "mindkd-ihm").as_uri())
    frame = stays(4, paired=[True, False, True, False])
    served = mlflow.pyfunc.load_model(CHAMPION).predict(frame)
    expected = students[1].predict(None, frame)
    np.testing.assert_allclose(served["y"], expected["y"], rtol=0, atol=1e-7)
    assert list(served["head"]) == ["fused", "ehr", "fused", "ehr"]
    assert not np.allclose(served["y"], students[0].predict(None, frame)["y"])

    again = register_best("ihm", uri)  # idempotent: same version, nothing new
    client = MlflowClient(uri)
    assert again.version == version.version
    assert len(client.search_model_versions(f"name = '{model_name('ihm')}'")) == 1

    best_now = _run(
        tmp_path, "mindkd-ihm", {METRIC: 0.85}, StudentPyfunc(card, trained_weights(card, 9))
    )
    moved = register_best("ihm", uri)
    assert moved.run_id == best_now and int(moved.version) == int(version.version) + 1
    assert client.get_model_version(model_name("ihm"), version.version).aliases == []
    assert mlflow.pyfunc.load_model(CHAMPION).metadata.run_id == best_now


def test_selection_reads_validation_metrics_only_and_says_when_nothing_fits(
    card: dict[str, Any], tmp_path: Path
) -> None:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    with pytest.raises(ValueError, match="not a validation metric"):
        register_best("ihm", uri, metric="full.routed.auroc")
    assert metric_key("ihm", "val/auroc") == "ihm.distill.mind.val/auroc"
    assert [metric_mode(m) for m in ("best/val/auroc", "val/auprc", "best/val/loss")] == [
        "max",
        "max",
        "min",
    ]
    with pytest.raises(RegistryError, match="no MLflow experiment mindkd-ihm or mindkd"):
        find_best("ihm", uri)
    _run(tmp_path, "mindkd-ihm", {METRIC: 0.9})
    _run(
        tmp_path,
        "mindkd-ihm",
        {METRIC: 0.8},
        StudentPyfunc(card, trained_weights(card)),
        status="FAILED",
    )
    with pytest.raises(RegistryError, match=r"no finished run .* pyfunc student of 'ihm'"):
        register_best("ihm", uri)
    assert MlflowClient(uri).search_registered_models() == []
