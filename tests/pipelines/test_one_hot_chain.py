"""``ehr.categorical: one_hot`` through a real KedroSession (``one_hot_run``: ehr, pairing,
teachers and distill of the ihm namespace at tiny sizes), then the logged student served from the
MLflow registry.

The run works on a copy of ``data_run``'s data (built with the continuous encoding), so pheno's
store stays at 34 columns while ihm's is rebuilt at 59: every network reads its own store's width.
"""

from __future__ import annotations

import sys

import mlflow
import numpy as np
import pytest

from kedro_harness import ProjectRun
from mindkd.mimic.variables import CHANNEL, VARIABLE_NAMES
from mindkd.processing.normalise import feature_layout
from mindkd.serving import stays_from_stores
from mindkd.tracking.registry import ALIAS, register_best
from mindkd.training.spec import VARIANTS

pytestmark = pytest.mark.slow

C = len(VARIABLE_NAMES)
ONE_HOT = feature_layout("one_hot")


def test_the_store_is_one_hot_with_named_columns(one_hot_run: ProjectRun) -> None:
    catalog = one_hot_run.catalog()
    store, raw = catalog.load("ihm.timeseries"), catalog.load("ihm.timeseries_raw")
    values, source = np.asarray(store.arrays["values"]), np.asarray(raw.arrays["values"])
    assert values.shape == (*source.shape[:2], 59)
    assert store.metadata["encoding"] == "one_hot"
    assert store.metadata["features"] == list(ONE_HOT.features)
    np.testing.assert_array_equal(values[..., 42:], source[..., C:])  # masks untouched
    # every valid hour holds exactly the raw GCS eye score's category; padding holds none
    eye = [ONE_HOT.features.index(f"gcs_eye={k}") for k in range(1, 5)]
    hours = np.arange(values.shape[1])[None, :]
    valid = hours < store.index.sort_values("row")["length"].to_numpy()[:, None]
    score = source[..., CHANNEL["gcs_eye"]]
    np.testing.assert_array_equal(values[..., eye].argmax(-1)[valid] + 1, score[valid])
    np.testing.assert_array_equal(values[..., eye].sum(-1), valid.astype(np.float32))
    assert (score[valid] != 4).any()  # the demo observes scores other than the normal
    # standardised with statistics of the train stays' observed values only
    cohort, normaliser = catalog.load("ihm.cohort"), catalog.load("ihm.normaliser")
    train = source[raw.rows(cohort.loc[cohort["split"] == "train", "stay_id"])]
    heart = CHANNEL["heart_rate"]
    observed = train[..., heart][train[..., C + heart] == 1].astype(np.float64)
    mean, std = normaliser["mean"][heart], normaliser["std"][heart]
    assert (mean, std) == pytest.approx((observed.mean(), observed.std()), rel=1e-9)
    column = values[..., ONE_HOT.features.index("heart_rate")]
    expected = ((source[..., heart] - np.float32(mean)) / np.float32(std)).astype(np.float32)
    np.testing.assert_allclose(column[valid], expected[valid], rtol=1e-6, atol=1e-5)
    # the other task was not rebuilt: its store keeps the continuous encoding
    pheno = catalog.load("pheno.timeseries")
    assert pheno.arrays["values"].shape[-1] == 2 * C
    assert pheno.metadata["encoding"] == "continuous"


def test_teachers_and_every_variant_take_the_store_width(one_hot_run: ProjectRun) -> None:
    catalog = one_hot_run.catalog()
    members = catalog.load("ihm.teacher_logits").provenance["members"]
    ehr = {name: m for name, m in members.items() if m["modality"] == "ehr"}
    assert len(ehr) == 3
    assert all(m["settings"]["in_channels"] == 59 for m in ehr.values())
    for variant in VARIANTS:
        spec = catalog.load(f"ihm.distill.{variant}.spec")
        assert spec["ehr_encoder"]["settings"]["in_channels"] == 59, variant
        assert spec["ehr_input"] == ONE_HOT.to_dict(), variant


def test_the_served_one_hot_student_reproduces_its_predictions(
    one_hot_run: ProjectRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # a loaded model prepends its code folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", one_hot_run.tracking_uri)
    mlflow.set_tracking_uri(one_hot_run.tracking_uri)
    register_best("ihm", one_hot_run.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/mindkd-ihm-student@{ALIAS}")
    assert model.unwrap_python_model().model.ehr_encoder.in_channels == 59

    catalog = one_hot_run.catalog()
    test = catalog.load("ihm.distill.test_samples")
    store = catalog.load("ihm.timeseries")
    served = model.predict(stays_from_stores(test, store, catalog.load("cxr_image_store")))
    predictions = catalog.load("ihm.distill.mind_predictions")
    routed = predictions[predictions["head"] == "routed"].set_index("stay_id")
    expected = 1.0 / (1.0 + np.exp(-routed.loc[test["stay_id"], "logit_0"].to_numpy()))
    np.testing.assert_allclose(served["y"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
