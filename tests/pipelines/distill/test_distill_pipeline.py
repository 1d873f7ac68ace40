"""The distill pipeline end to end with Kedro's SequentialRunner on in-memory data, and its config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from distill_data import MEMBERS, DistillInputs, distill_params, make_inputs, task_params
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro.validation.parameter_validator import ParameterValidator
from pydantic import ValidationError

from mindkd.evaluation import OptionalParquetDataset
from mindkd.io.torch_state import TorchStateDictDataset
from mindkd.models.student import MultiHeadStudent, UnimodalClassifier
from mindkd.pipelines.distill.params import DistillParams
from mindkd.pipelines.distill.pipeline import create_pipeline
from mindkd.serving import StudentPyfunc, stays_from_stores
from mindkd.tasks import TASKS

PROJECT = Path(__file__).resolve().parents[3]
MODELS = ["mind", "no_kd", "zero_filled", "medfuse", "mckd", "teachers", "bayes_ceiling"]
EPOCHS = 2


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so tests can read every intermediate."""

    def _release(self) -> None:
        pass


def _catalog(
    inputs: DistillInputs, params: DistillParams, outputs: set[str] | None = None
) -> DataCatalog:
    stores = {
        "ihm.timeseries": inputs.timeseries,
        "cxr_image_store": inputs.image_store,
        "ihm.teacher_logits": inputs.cache,
        "params:ihm.distill": params,
        "params:ihm.task": task_params(),
    }
    tables = {
        "ihm.cohort": inputs.cohort,
        "ihm.pairs": inputs.pairs,
        "ihm.cxr_only": inputs.cxr_only,
        "ihm.subgroups": inputs.subgroups,
        "demo_truth_stays": inputs.truth,
    }
    return DataCatalog(
        datasets={
            **{name: MemoryDataset(value, copy_mode="assign") for name, value in stores.items()},
            **{name: MemoryDataset(value) for name, value in tables.items()},
            **{name: KeptDataset(copy_mode="assign") for name in outputs or ()},
        }
    )


def _no_teacher_may_run(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a teacher network was built or run inside the distill pipeline")


@pytest.fixture(scope="module")
def no_teachers() -> Iterator[None]:
    """Building or running a teacher (``UnimodalClassifier``) fails the test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(UnimodalClassifier, "__init__", _no_teacher_may_run)
        patch.setattr(UnimodalClassifier, "forward", _no_teacher_may_run)
        yield


@pytest.fixture(scope="module")
def run(no_teachers: None) -> tuple[DistillInputs, DataCatalog]:
    inputs = make_inputs()
    pipeline = create_pipeline(tasks=("ihm",), members=MEMBERS)
    catalog = _catalog(inputs, distill_params(), pipeline.all_outputs())
    SequentialRunner().run(pipeline, catalog)
    return inputs, catalog


def test_the_guard_catches_a_teacher_forward(no_teachers: None) -> None:
    """The patch the pipeline runs under does fail on a teacher, so a passing run proves none ran."""
    from mindkd.models.registry import build_encoder

    with pytest.raises(AssertionError, match="teacher network"):
        UnimodalClassifier(build_encoder("gru", hidden=4), 1)


def test_pipeline_reads_prepared_data_and_the_cache_only() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "cxr_image_store",
        "demo_truth_stays",
        *(
            f"{t}.{n}"
            for t in TASKS
            for n in ("cohort", "timeseries", "pairs", "cxr_only", "subgroups", "teacher_logits")
        ),
        *(f"params:{t}.{k}" for t in TASKS for k in ("distill", "task")),
    }
    namespaces = {n.namespace for n in pipeline.only_nodes_with_namespaces(["ihm"]).nodes}
    assert namespaces == {
        "ihm.distill",
        *(
            f"ihm.distill.{m}"
            for m in ("mind", "no_kd", "zero_filled", "medfuse", "mckd", "teachers", "mfh")
        ),
    }
    confusion = {n.name for n in pipeline.nodes if n.name.endswith("plot_confusion")}
    assert confusion == {"los.distill.plot_confusion"}  # multiclass tasks only
    assert {n.name for n in pipeline.only_nodes_with_namespaces(["ihm.distill.mind"]).nodes} == {
        f"ihm.distill.mind.{name}"
        for name in (
            "specify_mind",
            "train_model",
            "track_training_curves",
            "predict_test_set",
            "measure_compression",
            "export_student",
        )
    }


def test_comparison_table_has_one_row_per_model_and_subset_with_intervals(run) -> None:
    inputs, catalog = run
    table = catalog.load("ihm.distill.comparison_table")
    assert list(zip(table["model"], table["subset"], strict=True)) == [
        (m, s) for m in MODELS for s in ("full", "paired", "ehr_only")
    ]
    test = inputs.cohort[inputs.cohort["split"] == "test"]
    assert set(table.loc[table["subset"] == "full", "n"]) == {len(test)}
    assert set(table.loc[table["subset"] == "paired", "n"]) == {16}
    assert set(table.loc[table["subset"] == "ehr_only", "n"]) == {len(test) - 16}
    for metric in ("auroc", "auprc"):
        assert (table[f"{metric}_low"] <= table[metric] + 1e-12).all()
        assert (table[metric] <= table[f"{metric}_high"] + 1e-12).all()
    mind = table.set_index(["model", "subset"]).loc[("mind", "full")]
    assert mind["parameters"] > 0 and mind["latency_p50_ms"] <= mind["latency_p95_ms"]
    assert mind["teacher_fraction"] == pytest.approx(mind["parameters"] / 4e6)
    # single-head baselines have no unimodal heads; the teachers and MIND have all three
    zero = table.set_index(["model", "subset"]).loc[("zero_filled", "paired")]
    assert np.isnan(zero["auroc_ehr"]) and np.isfinite(zero["auroc_fused"])
    markdown = catalog.load("ihm.distill.comparison_markdown")
    assert markdown == catalog.load("ihm.distill.comparison_report")
    comparison, groups = markdown.split("## AUROC per patient group")
    assert comparison.count("\n| ") == 1 + len(table)  # header + one line per row
    assert "**age band**" in groups and "| 18-39 | 2 |" in groups and "too small" in groups


def test_subgroups_are_scored_or_reported_with_their_size(run) -> None:
    """Every group of every attribute is reported for every model; the 3-stay group is not
    scored (under evaluation.subgroup_min_size) but listed, and MLflow gets each scored group."""
    inputs, catalog = run
    table = catalog.load("ihm.distill.subgroup_evaluation")
    models = MODELS
    test = inputs.cohort["split"] == "test"
    groups = inputs.subgroups[test.to_numpy()]
    for attribute in ("sex", "age_band", "race", "insurance"):
        part = table[table["attribute"] == attribute]
        counts = groups[attribute].value_counts()
        assert set(part["group"]) == set(counts.index)
        for group, n in counts.items():
            rows = part[part["group"] == group]
            assert rows["model"].tolist() == models and (rows["n"] == n).all()
    small = table[table["group"] == "18-39"]
    assert (small["status"] == "too small (< 5 stays)").all() and small["auroc"].isna().all()
    scored = table[table["status"] == "ok"]
    assert len(scored) == len(table) - len(small)
    assert (
        scored["auroc_low"].le(scored["auroc"]).all()
        and scored["auroc"].le(scored["auroc_high"]).all()
    )
    metrics = catalog.load("ihm.distill.metrics")
    assert "mind.subgroup.sex.Female.auroc" in metrics
    assert "mind.subgroup.age_band.18-39.n" in metrics
    assert "mind.subgroup.age_band.18-39.auroc" not in metrics


def test_predictions_cover_every_test_stay_per_head(run) -> None:
    inputs, catalog = run
    predictions = catalog.load("ihm.distill.predictions")
    test = inputs.pairs[inputs.pairs["split"] == "test"]
    paired = set(test.dropna(subset=["dicom_id"])["stay_id"])
    for model in MODELS:
        rows = predictions[predictions["model"] == model]
        assert set(rows.loc[rows["head"] == "routed", "stay_id"]) == set(test["stay_id"])
        if model in ("mind", "no_kd", "teachers"):
            assert set(rows.loc[rows["head"] == "ehr", "stay_id"]) == set(test["stay_id"])
            assert set(rows.loc[rows["head"] == "fused", "stay_id"]) == paired
    mind = predictions[predictions["model"] == "mind"].pivot(
        index="stay_id", columns="head", values="logit_0"
    )
    # routing: paired -> fused head, EHR-only -> EHR head
    assert np.allclose(mind.loc[list(paired), "routed"], mind.loc[list(paired), "fused"])
    ehr_only = sorted(set(test["stay_id"]) - paired)
    assert np.allclose(mind.loc[ehr_only, "routed"], mind.loc[ehr_only, "ehr"])


def test_every_loss_term_per_epoch_is_tracked(run) -> None:
    _, catalog = run
    curves = catalog.load("ihm.distill.mind.curves")
    for key in (
        "train/loss",
        "train/task",
        "train/kd",
        "train/kd/ehr",
        "train/kd/cxr",
        "train/kd/fused",
        "train/task/fused",
        "val/auroc",
        "val/kd",
        "lr",
    ):
        assert [c["step"] for c in curves[key]] == list(range(1, EPOCHS + 1)), key
    history = catalog.load("ihm.distill.mind.history")
    assert history["monitor"] == "val/auroc" and len(history["epochs"]) == EPOCHS
    assert curves["best/val/auroc"] == [
        {"value": history["best_score"], "step": history["best_epoch"]}
    ]
    kept = curves["val/auroc"][history["best_epoch"] - 1]["value"]
    assert kept == history["best_score"] == max(c["value"] for c in curves["val/auroc"])
    assert history["train_samples"] == {"paired": 32, "ehr_only": 16, "cxr_only": 0}
    metrics = catalog.load("ihm.distill.metrics")
    assert {
        "mind.full.routed.auroc_low",
        "mind.paired.fused.ece",
        "mind.full.routed.delta_auroc",
        "bayes_ceiling.full.ehr.auroc",
        "mind.latency_p95_ms",
    } <= set(metrics)


def test_student_weights_model_and_spec_agree(run) -> None:
    _, catalog = run
    spec = catalog.load("ihm.distill.mind.spec")
    weights = catalog.load("ihm.distill.mind.weights")
    served = catalog.load("ihm.distill.mind.mlflow_model")
    assert isinstance(served, StudentPyfunc) and served.card == spec
    model = served.model
    assert isinstance(model, MultiHeadStudent) and not model.training
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert spec["parameters"] == sum(p.numel() for p in model.parameters())
    assert spec["image"]["images"] == 32 and spec["loss"]["alpha"] == 0.5
    compression = catalog.load("ihm.distill.mind_compression")
    assert compression["latency_samples"] == 50 and compression["latency_threads"] == 1


def test_the_served_student_gives_the_routed_test_predictions(run) -> None:
    inputs, catalog = run
    test = catalog.load("ihm.distill.test_samples")
    served = catalog.load("ihm.distill.mind.mlflow_model")
    out = served.predict(None, stays_from_stores(test, inputs.timeseries, inputs.image_store))
    predictions = catalog.load("ihm.distill.mind_predictions")
    routed = predictions[predictions["head"] == "routed"].set_index("stay_id")["logit_0"]
    expected = 1.0 / (1.0 + np.exp(-routed.loc[test["stay_id"]].to_numpy()))
    np.testing.assert_allclose(out["y"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    paired = test["dicom_id"].notna().to_numpy()
    assert paired.any() and (~paired).any()
    assert list(out["head"]) == ["fused" if p else "ehr" for p in paired]
    assert list(out["stay_id"]) == list(test["stay_id"])


def test_same_seed_and_config_give_the_same_metrics(run, no_teachers: None) -> None:
    inputs, catalog = run
    pipeline = create_pipeline(tasks=("ihm",), variants=("mind",), members=MEMBERS)
    again = _catalog(inputs, distill_params(), pipeline.all_outputs())
    SequentialRunner().run(pipeline, again)
    first, second = (c.load("ihm.distill.evaluation") for c in (catalog, again))
    columns = list(first.columns)
    for model in ("mind", "teachers", "bayes_ceiling"):
        a = first[first["model"] == model].reset_index(drop=True)
        b = second[second["model"] == model].reset_index(drop=True)
        pd.testing.assert_frame_equal(a[columns], b[columns])


def test_project_config_validates_and_resolves(tmp_path: Path) -> None:
    def loader(runtime: dict[str, Any]) -> OmegaConfigLoader:
        return OmegaConfigLoader(
            str(PROJECT / "conf"),
            base_env="base",
            default_run_env="local",
            merge_strategy={"parameters": "soft", "globals": "soft"},
            runtime_params={"data_root": str(tmp_path), **runtime},
        )

    pipeline = create_pipeline()
    override = loader({"ihm": {"distill": {"alpha": 0.3}}})
    validated = ParameterValidator({"distill": pipeline}).validate_raw_params(
        override["parameters"]
    )
    committed = loader({})["parameters"]["pheno"]["distill"]["alpha"]  # pheno's own, untouched
    assert committed != 0.3
    for task, alpha in (("ihm", 0.3), ("pheno", committed)):
        params = validated[task]["distill"]
        assert isinstance(params, DistillParams) and params.alpha == alpha
        assert params.evaluation.n_bootstrap >= 1000 and params.evaluation.latency.samples >= 50
    catalog = DataCatalog.from_config(override["catalog"])
    assert isinstance(catalog.get("pheno.distill.mind.weights"), TorchStateDictDataset)
    assert isinstance(catalog.get("demo_truth_stays"), OptionalParquetDataset)
    for name in (
        "comparison_table",
        "comparison_markdown",
        "roc_pr_fused",
        "metrics",
        "no_kd.curves",
        "medfuse.spec",
        "mind.mlflow_model",
        "teachers_predictions",
    ):
        assert f"ihm.distill.{name}" in catalog, name


def test_misspelt_or_unknown_keys_fail_before_running() -> None:
    with pytest.raises(ValidationError, match="temprature"):
        distill_params(temprature=2.0)
    with pytest.raises(ValidationError, match="cxr encoder"):
        distill_params(
            student={**distill_params().student.model_dump(), "ehr_encoder": {"name": "resnet18"}}
        )
    with pytest.raises(ValidationError, match="n_bootstrap"):
        distill_params(evaluation={"n_bootstrap": 100})


def test_mckd_learns_modality_weights_on_held_out_train_subjects(run) -> None:
    """The MCKD student logs its importance weights per epoch, and its meta samples come from the
    train split's subjects that it did not train on."""
    _, catalog = run
    history = catalog.load("ihm.distill.mckd.history")
    epochs = history["epochs"]
    weights = [(e["train/importance/ehr"], e["train/importance/cxr"]) for e in epochs]
    assert all(ehr + cxr == pytest.approx(1.0) for ehr, cxr in weights)
    assert weights[-1] != (0.5, 0.5)  # the meta steps moved them
    assert sum(history["meta_samples"].values()) + sum(history["train_samples"].values()) == sum(
        catalog.load("ihm.distill.no_kd.history")["train_samples"].values()
    )
    curves = catalog.load("ihm.distill.mckd.curves")
    assert "train/importance/ehr" in curves
    spec = catalog.load("ihm.distill.mckd.spec")
    assert spec["mckd"]["kd_weight"] == 0.1 and spec["loss"]["alpha"] == 0.0


def test_mfh_verdicts_sit_next_to_the_measured_gains(run) -> None:
    _, catalog = run
    gammas = catalog.load("ihm.distill.mfh.gammas")
    assert len(gammas) == 9 and gammas["n_val"].gt(0).all()
    verdicts = catalog.load("ihm.distill.mfh.verdicts").set_index(["teacher", "head"])
    differences = catalog.load("ihm.distill.differences")
    mind_ehr = differences[
        (differences["model"] == "mind")
        & (differences["reference"] == "no_kd")
        & (differences["subset"] == "full")
        & (differences["head"] == "ehr")
        & (differences["metric"] == "auroc")
    ]
    assert verdicts.loc[("ehr", "ehr"), "gain"] == pytest.approx(mind_ehr["difference"].item())
    assert verdicts.loc[("ehr", "cxr"), "gain_model"] == "mckd"
    assert np.isnan(verdicts.loc[("fused", "cxr"), "gain"])  # no model distils that pair
    assert "gamma_true" in verdicts.columns  # the demo truth is there
    assert verdicts.loc[("ehr", "cxr"), "gamma_true"] == 0.0
    report = catalog.load("ihm.distill.mfh.report")
    assert report.count("\n| ") == 1 + 9  # the header and one row per pair
    metrics = catalog.load("ihm.distill.mfh.metrics")
    assert "mfh.ehr_to_cxr.gamma" in metrics and "mfh.ehr_to_cxr.gamma_true" in metrics
