"""The teachers pipeline end to end with Kedro's SequentialRunner on in-memory data, and its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro.validation.parameter_validator import ParameterValidator
from kedro_datasets.json import JSONDataset
from teacher_data import (
    CHANNELS,
    MEMBERS,
    TeacherInputs,
    make_inputs,
    member_params,
    parameter_values,
)

from mindkd.io.logit_cache import LogitCache, LogitCacheDataset
from mindkd.io.torch_state import TorchStateDictDataset, state_dict_sha256
from mindkd.models.batch import MultiModalBatch
from mindkd.pipelines.teachers.pipeline import create_pipeline
from mindkd.tasks import TASKS
from mindkd.training import teachers as training_glue
from mindkd.training.losses import ensemble_targets
from mindkd.training.metrics import auprc, auroc

PROJECT = Path(__file__).resolve().parents[3]
SLOTS = [slot for modality in ("ehr", "cxr") for slot in MEMBERS[modality]]


def _catalog(inputs: TeacherInputs, root: Path) -> DataCatalog:
    stores = {"ihm.timeseries": inputs.timeseries, "cxr_image_store": inputs.image_store}
    tables = {
        "ihm.cohort": inputs.cohort,
        "ihm.pairs": inputs.pairs,
        "ihm.cxr_only": inputs.cxr_only,
        "cxr_image_labels": inputs.image_labels,
        "subject_splits": inputs.subject_splits,
    }
    datasets: dict[str, Any] = {
        **{name: MemoryDataset(store, copy_mode="assign") for name, store in stores.items()},
        **{name: MemoryDataset(table) for name, table in tables.items()},
        **{name: MemoryDataset(value) for name, value in parameter_values().items()},
        "ihm.teacher_logits": LogitCacheDataset(filepath=str(root / "teacher_logits")),
        "ihm.teacher_report": JSONDataset(filepath=str(root / "report.json")),
    }
    for slot in SLOTS:
        datasets[f"ihm.teacher_{slot}.weights"] = TorchStateDictDataset(
            filepath=str(root / slot / "weights.pt")
        )
    # Stand-ins for the kedro-mlflow datasets (metrics, artifacts) of the real catalog.
    for name in ("ihm.teacher_report_table", "ihm.teacher_metrics"):
        datasets[name] = MemoryDataset()
    for slot in SLOTS:
        datasets[f"ihm.teacher_{slot}.curves"] = MemoryDataset()
    return DataCatalog(datasets=datasets)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TeacherInputs, DataCatalog, Path]:
    inputs = make_inputs()
    root = tmp_path_factory.mktemp("teachers")
    catalog = _catalog(inputs, root)
    pipeline = create_pipeline(members=MEMBERS).only_nodes_with_namespaces(["cxr_pretrain", "ihm"])
    SequentialRunner().run(pipeline, catalog)
    return inputs, catalog, root


def test_one_task_namespace_selects_only_its_nodes() -> None:
    pipeline = create_pipeline(members=MEMBERS, tasks=("ihm", "pheno"))
    ihm = pipeline.only_nodes_with_namespaces(["ihm"])
    assert {n.namespace.split(".")[0] for n in ihm.nodes} == {"ihm"}
    shared = pipeline.only_nodes_with_namespaces(["cxr_pretrain"])
    assert {n.name for n in shared.nodes} == {
        f"cxr_pretrain.{s}.pretrain_cxr_teacher" for s in MEMBERS["cxr"]
    }  # pre-trained once for both tasks
    assert len(ihm.nodes) * 2 + len(shared.nodes) == len(pipeline.nodes)
    assert {n.namespace for n in ihm.nodes} == {"ihm", *(f"ihm.teacher_{s}" for s in SLOTS)}
    assert all({"teachers", "ihm"} <= n.tags for n in ihm.nodes)
    assert "ihm.teacher_small.train_ehr_teacher" in {n.name for n in ihm.nodes}
    with pytest.raises(ValueError, match="slot 'task' is reserved"):
        create_pipeline(members={"ehr": ("task",), "cxr": ("r18",)})


def test_cache_has_one_row_per_member_and_key_in_every_split(run) -> None:
    inputs, catalog, _ = run
    cache: LogitCache = catalog.load("ihm.teacher_logits")  # read back from disk
    table = cache.table
    assert not table.duplicated(["modality", "member", "key"]).any()
    stays = inputs.cohort.assign(key=inputs.cohort["stay_id"].astype(str))
    images = pd.concat([inputs.pairs.dropna(subset=["dicom_id"]), inputs.cxr_only]).rename(
        columns={"dicom_id": "key"}
    )
    for modality, expected in (("ehr", stays), ("cxr", images)):
        assert cache.members(modality) == list(MEMBERS[modality])
        truth = expected.set_index("key")["split"].sort_index()
        for member in MEMBERS[modality]:
            rows = table[(table["modality"] == modality) & (table["member"] == member)]
            got = rows.set_index("key")["split"].sort_index()
            pd.testing.assert_series_equal(got, truth, check_names=False)
            assert set(got) == {"train", "val", "test"}
    assert len(table) == 2 * len(stays) + 2 * len(images)


def _forward(
    slot: str, weights: dict[str, torch.Tensor], inputs: TeacherInputs, keys: list
) -> np.ndarray:
    model = training_glue.build_teacher(member_params()[slot], 1, ehr_channels=CHANNELS)
    model.load_state_dict(weights)
    model.eval()
    if slot in MEMBERS["ehr"]:
        store = inputs.timeseries
        index = store.index.set_index("stay_id").loc[keys]
        batch = MultiModalBatch(
            size=len(keys),
            ehr=torch.from_numpy(store.arrays["values"][index["row"].to_numpy()]),
            ehr_lengths=torch.tensor(index["length"].to_numpy()),
            ehr_index=torch.arange(len(keys)),
        )
    else:
        pixels = inputs.image_store.take("images", keys).astype(np.float32)
        x = (pixels / 255.0 - training_glue.IMAGE_MEAN) / training_glue.IMAGE_STD
        batch = MultiModalBatch(
            size=len(keys), cxr=torch.from_numpy(x[:, None]), cxr_index=torch.arange(len(keys))
        )
    with torch.no_grad():
        return model(batch)[model.modality].logits.numpy()


def test_cached_logits_equal_a_forward_pass_of_the_saved_weights(run) -> None:
    inputs, _, root = run
    cache = LogitCacheDataset(filepath=str(root / "teacher_logits")).load()
    samples = {
        "ehr": inputs.cohort["stay_id"].tolist()[::7],
        "cxr": [
            *inputs.pairs["dicom_id"].dropna().tolist()[::5],
            *inputs.cxr_only["dicom_id"][::9],
        ],
    }
    for modality in ("ehr", "cxr"):
        for slot in MEMBERS[modality]:
            weights = TorchStateDictDataset(filepath=str(root / slot / "weights.pt")).load()
            expected = _forward(slot, weights, inputs, samples[modality])
            cached = cache.logits(modality, slot, samples[modality])
            np.testing.assert_allclose(cached, expected, rtol=1e-5, atol=1e-5)
            provenance = cache.provenance["members"][slot]
            assert provenance["weights_sha256"] == state_dict_sha256(weights)
            assert provenance["modality"] == modality
            assert provenance["encoder"] == member_params()[slot].encoder


def test_report_scores_members_and_the_hand_made_ensemble_mean(run) -> None:
    inputs, catalog, _ = run
    cache = catalog.load("ihm.teacher_logits")
    report = catalog.load("ihm.teacher_report")
    rows = {(r["model"], r["split"]): r for r in report["rows"]}
    assert {m for m, _ in rows} == {*SLOTS, "ehr_ensemble", "cxr_ensemble"}

    val = inputs.cohort[inputs.cohort["split"] == "val"]
    hand_mean = np.mean([cache.logits("ehr", m, val["stay_id"]) for m in MEMBERS["ehr"]], axis=0)
    combined = ensemble_targets(
        np.stack([cache.logits("ehr", m, val["stay_id"]) for m in MEMBERS["ehr"]])
    )
    np.testing.assert_allclose(combined, hand_mean, rtol=1e-6)
    ensemble = rows[("ehr_ensemble", "val")]
    assert ensemble["auroc"] == pytest.approx(auroc(val["y"].to_numpy(), hand_mean))
    assert ensemble["auprc"] == pytest.approx(auprc(val["y"].to_numpy(), hand_mean))
    assert ensemble["auroc_low"] <= ensemble["auroc"] <= ensemble["auroc_high"]
    best = max(rows[(m, "val")]["auroc"] for m in MEMBERS["ehr"])
    assert ensemble["gain_auroc"] == pytest.approx(ensemble["auroc"] - best)
    assert ensemble["n"] == len(val)

    paired_test = inputs.pairs.dropna(subset=["dicom_id"]).query("split == 'test'")
    assert rows[("cxr_ensemble", "test")]["n"] == len(paired_test)  # CXR: paired images only
    assert rows[("small", "val")]["auroc"] > 0.7  # the learnable signal was learnt

    counts = report["parameters"]
    assert counts["ehr_ensemble"] == counts["small"] + counts["large"]
    assert counts["ensembles_total"] == counts["ehr_ensemble"] + counts["cxr_ensemble"]
    assert counts["r18"] == cache.provenance["members"]["r18"]["parameters"]


def test_report_table_and_mlflow_metrics(run) -> None:
    _, catalog, _ = run
    table = catalog.load("ihm.teacher_report_table")
    assert table["model"].tolist() == [
        *MEMBERS["ehr"],
        "ehr_ensemble",
        *MEMBERS["cxr"],
        "cxr_ensemble",
    ]
    for column in ("parameters", "val_auroc", "val_auroc_low", "test_auprc_high", "val_gain_auroc"):
        assert column in table.columns
    metrics = catalog.load("ihm.teacher_metrics")
    assert {"ehr_ensemble.val.auroc", "cxr_ensemble.test.auprc_low", "r18.parameters"} <= set(
        metrics
    )
    assert all(set(v) == {"value", "step"} for v in metrics.values())

    curves = catalog.load("ihm.teacher_dense.curves")
    assert len(curves["pretrain/val/auroc"]) == 2  # two pre-training epochs
    assert [c["step"] for c in curves["val/auroc"]] == [1, 2, 3]
    assert not any("/kd" in key for key in curves)  # teachers have no distillation term
    assert "pretrain/val/auroc" not in catalog.load("ihm.teacher_small.curves")


def test_project_config_matches_the_pipeline(tmp_path: Path) -> None:
    """Every parameter the default pipeline reads exists and validates; every artefact has an entry."""
    loader = OmegaConfigLoader(
        str(PROJECT / "conf"),
        base_env="base",
        default_run_env="local",
        merge_strategy={"parameters": "soft", "globals": "soft"},
        runtime_params={"data_root": str(tmp_path)},
    )
    pipeline = create_pipeline()
    validated = ParameterValidator({"teachers": pipeline}).validate_raw_params(loader["parameters"])
    for name in sorted(i for i in pipeline.inputs() if i.startswith("params:")):
        value: Any = validated
        for part in name.removeprefix("params:").split("."):
            value = value[part]
        assert not isinstance(value, dict), f"{name} was not typed"
    catalog = DataCatalog.from_config(loader["catalog"])
    for slot in ("resnet18", "densenet"):  # pre-trained once for every task
        assert isinstance(catalog.get(f"cxr_pretrained_{slot}"), TorchStateDictDataset)
    for task in TASKS:
        assert isinstance(catalog.get(f"{task}.teacher_logits"), LogitCacheDataset)
        for slot in ("lstm_small", "transformer", "resnet34", "densenet"):
            assert isinstance(catalog.get(f"{task}.teacher_{slot}.weights"), TorchStateDictDataset)
        for name in ("teacher_report", "teacher_report_table", "teacher_metrics"):
            assert f"{task}.{name}" in catalog
