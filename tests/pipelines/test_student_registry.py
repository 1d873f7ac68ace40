"""The student a real ``kedro run`` logged, registered from its MLflow store and served from the
registry on the prepared test stays: the same probabilities as the pipeline's own predictions."""

from __future__ import annotations

import sys

import mlflow
import numpy as np
import pytest

from kedro_harness import ProjectRun
from mindkd.serving import stays_from_stores
from mindkd.tasks import get_task
from mindkd.tracking.registry import ALIAS, register_best


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ihm", "pheno"])
def test_registered_champion_serves_the_test_stays_as_the_pipeline_predicted(
    model_run: ProjectRun, task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # a loaded model prepends its code folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", model_run.tracking_uri)
    mlflow.set_tracking_uri(model_run.tracking_uri)  # the autouse fixture resets it per test
    version = register_best(task, model_run.tracking_uri)
    assert version.aliases == [ALIAS]
    assert mlflow.get_run(version.run_id).data.tags["mindkd.task"] == task
    assert register_best(task, model_run.tracking_uri).version == version.version

    catalog = model_run.catalog()
    test = catalog.load(f"{task}.distill.test_samples")
    inputs = stays_from_stores(
        test, catalog.load(f"{task}.timeseries"), catalog.load("cxr_image_store")
    )
    served = mlflow.pyfunc.load_model(f"models:/mindkd-{task}-student@{ALIAS}").predict(inputs)

    labels = list(get_task(task).labels)
    assert list(served.columns) == ["stay_id", "head", *labels]
    paired = test["dicom_id"].notna().to_numpy()
    assert paired.any() and (~paired).any()
    routing = catalog.load(f"{task}.distill.mind.spec")["routing"]  # fused | mean (pheno: tuned)
    assert list(served["head"]) == [routing if p else "ehr" for p in paired]
    predictions = catalog.load(f"{task}.distill.mind_predictions")
    routed = predictions[predictions["head"] == "routed"].set_index("stay_id")
    logits = routed.loc[test["stay_id"], [f"logit_{k}" for k in range(len(labels))]].to_numpy()
    expected = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(served[labels].to_numpy(), expected, rtol=1e-5, atol=1e-6)
