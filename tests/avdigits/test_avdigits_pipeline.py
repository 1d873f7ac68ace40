"""The ``avdigits`` stage end to end on a tiny FSDD-like folder, through its real catalog entries,
and read back by the sample builders the teachers and distill pipelines use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from pydantic import ValidationError

from mindkd.avdigits import LABELS
from mindkd.avdigits.splits import SplitError
from mindkd.pipeline_registry import ON_REQUEST
from mindkd.pipelines.avdigits import create_pipeline
from mindkd.pipelines.avdigits.params import AvDigitsSource
from mindkd.processing.normalise import store_layout
from mindkd.training import samples

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CATALOG = PROJECT_ROOT / "conf" / "base" / "catalog_avdigits.yml"
OUTPUTS = {
    "avdigits.cohort",
    "avdigits.timeseries",
    "avdigits.pairs",
    "avdigits.cxr_only",
    "avdigits.image_store",
    "avdigits.subgroups",
    "avdigits.subject_splits",
    "avdigits.data_report",
}


def _source(folder: Path, **changes: Any) -> AvDigitsSource:
    settings: dict[str, Any] = {
        "recordings_dir": str(folder),
        "speakers": {"val": ["carol"], "test": ["dave"]},
        "image_size": 16,
        **changes,
    }
    return AvDigitsSource.model_validate(settings)


def _catalog(data_root: Path, source: AvDigitsSource) -> DataCatalog:
    text = CATALOG.read_text().replace("${globals:data_root}", str(data_root))
    assert "${" not in text
    catalog = DataCatalog.from_config(yaml.safe_load(text))
    catalog["params:avdigits.source"] = MemoryDataset(source, copy_mode="assign")
    return catalog


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, fsdd_writer: Callable[..., Path]
) -> tuple[AvDigitsSource, dict[str, Any]]:
    """The stage run once: every dataset loaded back from disk."""
    tmp = tmp_path_factory.mktemp("avdigits")
    folder = fsdd_writer(tmp / "recordings")
    (folder / "notes.txt").write_text("not a recording")
    source = _source(folder)
    catalog = _catalog(tmp / "data", source)
    SequentialRunner().run(create_pipeline(), catalog)
    names = [n for n in _catalog_entries() if n != "params:avdigits.source"]
    return source, {name: catalog.load(name) for name in names}


def _catalog_entries() -> dict[str, Any]:
    """The stage's entries; ``avdigits.truth`` is the read-only stand-in for the generator truth
    the distill stage reads (real data has none), written by no pipeline."""
    entries = yaml.safe_load(CATALOG.read_text())
    return {name: entry for name, entry in entries.items() if name != "avdigits.truth"}


def test_the_stage_writes_every_dataset_of_its_catalog(built: tuple[Any, dict[str, Any]]) -> None:
    pipeline = create_pipeline()
    assert OUTPUTS <= pipeline.all_outputs()
    assert pipeline.all_outputs() == set(_catalog_entries())  # nothing left in memory only
    assert pipeline.inputs() == {"params:avdigits.source"}
    _, data = built
    assert set(data) == set(_catalog_entries())


def test_it_runs_on_request_only() -> None:
    assert "avdigits" in ON_REQUEST


def test_catalog_entries_rebuild_with_this_stage_and_show_no_previews() -> None:
    for name, entry in _catalog_entries().items():
        assert entry["rebuild"] == "re-run `kedro run --pipelines avdigits`", name
        assert entry["metadata"]["kedro-viz"]["preview"] is False, name
        assert entry["type"].startswith("mindkd.io."), name  # atomic writes, checked loads


def test_outputs_have_the_clinical_schemas(built: tuple[Any, dict[str, Any]]) -> None:
    _, data = built
    cohort, pairs = data["avdigits.cohort"], data["avdigits.pairs"]
    assert len(cohort) == 80 and list(cohort.columns[:2]) == ["stay_id", "subject_id"]
    assert set(cohort.groupby("speaker")["split"].agg(set).map(frozenset)) == {
        frozenset({"train"}),
        frozenset({"val"}),
        frozenset({"test"}),
    }
    assert list(pairs.columns) == ["stay_id", "subject_id", "dicom_id", "split"]
    assert pairs["dicom_id"].isna().sum() == 24  # round(0.3 · 40), round(0.3 · 20) twice
    store, images = data["avdigits.timeseries"], data["avdigits.image_store"]
    assert store.key == "stay_id" and list(store.index.columns) == ["stay_id", "row", "length"]
    assert store.arrays["values"].shape == (80, 96, 80)
    assert store_layout(store).width == 80
    assert images.key == "dicom_id" and images.arrays["images"].shape == (1797, 16, 16)
    assert images.arrays["images"].dtype == np.uint8
    assert list(data["avdigits.subgroups"].columns) == [
        "stay_id",
        "speaker",
        "accent",
        "sex",
        "duration_band",
    ]
    assert data["avdigits.skipped_recordings"].to_dict("records") == [
        {"file": "notes.txt", "reason": "name: not {digit}_{speaker}_{index}.wav"}
    ]


def test_the_normaliser_was_fitted_on_train_recordings_only(
    built: tuple[Any, dict[str, Any]],
) -> None:
    _, data = built
    cohort, raw = data["avdigits.cohort"], data["avdigits.timeseries_raw"]
    train = cohort.loc[cohort["split"] == "train", "stay_id"]
    assert sorted(data["avdigits.train_stays"]["stay_id"]) == sorted(train)
    lengths = raw.index.set_index("stay_id")["length"]
    normaliser = data["avdigits.normaliser"]
    assert set(normaliser["count"]) == {int(lengths[train].sum())}  # every train frame, no other
    assert int(lengths.sum()) > int(lengths[train].sum())
    values = np.asarray(raw.arrays["values"])
    rows = raw.rows(train)
    observed = np.concatenate([values[r, : lengths.iloc[r], :40] for r in rows])
    np.testing.assert_allclose(
        normaliser["mean"], observed.mean(axis=0, dtype=np.float64), rtol=1e-6
    )


def test_the_sample_builders_of_teachers_and_distill_read_the_outputs(
    built: tuple[Any, dict[str, Any]],
) -> None:
    _, data = built
    cohort, pairs, cxr_only = (
        data["avdigits.cohort"],
        data["avdigits.pairs"],
        data["avdigits.cxr_only"],
    )
    timeseries, image_store = data["avdigits.timeseries"], data["avdigits.image_store"]
    table = samples.assemble_samples(cohort, pairs, timeseries, image_store, LABELS)
    assert samples.describe(table) == {"paired": 56, "ehr_only": 24}
    assert len(samples.ehr_samples(cohort, timeseries, LABELS)) == 80
    paired = samples.paired_image_samples(pairs, cohort, LABELS)
    assert len(paired) == 56
    keys = samples.image_cache_keys(pairs, cxr_only, image_store)
    assert set(keys["key"]) == set(pairs["dicom_id"].dropna()) | set(cxr_only["dicom_id"])
    fingerprint = samples.fingerprint_inputs(cohort, timeseries, pairs, cxr_only, image_store)
    assert fingerprint["timeseries"]["shapes"] == {"values": [80, 96, 80]}
    dataset = samples.sample_dataset(
        table,
        LABELS,
        key="stay_id",
        timeseries=timeseries,
        ehr_key="stay_id",
        image_store=image_store,
        cxr_key="dicom_id",
    )
    assert len(dataset) == 80
    subjects = data["avdigits.subject_splits"]
    image_split = samples.pretrain_image_samples(
        cxr_only.assign(finding=1.0), subjects, image_store, ["finding"]
    )
    assert set(image_split["split"]) <= {"train", "val"}


def test_the_report_counts(built: tuple[Any, dict[str, Any]]) -> None:
    _, report = built[0], built[1]["avdigits.data_report"]
    assert report["source"]["recordings"] == 80 and report["source"]["skipped"] == 1
    assert report["source"]["skipped_by_reason"] == {"name": 1}
    assert report["speakers"] == {"train": ["alice", "bob"], "val": ["carol"], "test": ["dave"]}
    assert report["recordings"]["by_split"] == {"train": 40, "val": 20, "test": 20}
    assert report["samples"]["by_split"]["val"]["audio_only"] == 6
    assert report["missing"]["missing_image"]["realised"] == {"train": 0.3, "val": 0.3, "test": 0.3}
    assert report["images"]["total"] == 1797
    reuse = report["image_reuse"]["train"]
    assert reuse["pairs"] == 28 and reuse["max_uses"] == 1  # plenty of images: none reused


def test_the_conf_parameters_validate() -> None:
    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"),
        base_env="base",
        default_run_env="base",
        config_patterns={"parameters": ["parameters_avdigits*"]},
    )
    source = AvDigitsSource.model_validate(loader["parameters"]["avdigits"]["source"])
    assert source.recordings_dir == "data/01_raw/fsdd/recordings"  # globals default
    assert source.speakers.test == ("theo",) and source.features.n_mels == 40


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"missing_image": 1.0}, "less than 1"),
        ({"speakers": {"val": ["dave"], "test": ["dave"]}}, "both val and test"),
        ({"image_shares": {"train": 1, "val": 0}}, "greater than 0"),
        ({"seeds": 1}, "Extra inputs"),
        ({"features": {"n_mel": 3}}, "Extra inputs"),
    ],
)
def test_bad_parameters_fail(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _source(tmp_path, **changes)


def test_speakers_not_found_stop_the_stage(
    tmp_path: Path, fsdd_writer: Callable[..., Path]
) -> None:
    folder = fsdd_writer(tmp_path / "rec", speakers=("alice", "bob", "carol"), takes=1)
    catalog = _catalog(tmp_path / "data", _source(folder))
    with pytest.raises(SplitError, match=r"test speaker\(s\) \['dave'\] are not in the recordings"):
        SequentialRunner().run(create_pipeline(), catalog)


def test_frames_are_the_recordings_observed(built: tuple[Any, dict[str, Any]]) -> None:
    _, data = built
    store, cohort = data["avdigits.timeseries"], data["avdigits.cohort"]
    samples_n = (cohort.set_index("stay_id")["duration_s"] * 8000).round().astype(int)
    expected = np.minimum(1 + np.maximum(samples_n - 256, 0) // 80, 96)
    lengths = store.index.set_index("stay_id")["length"]
    pd.testing.assert_series_equal(lengths.loc[samples_n.index], expected, check_names=False)
