"""The cxr nodes: decode once, and a re-run with unchanged inputs decodes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_datasets.pandas import CSVDataset
from PIL import Image

from mindkd.io.array_store import ArrayStoreDataset
from mindkd.io.cxr_sources import ImageFolder
from mindkd.mimic.cxr import FINDINGS, image_path
from mindkd.pipelines.cxr import nodes
from mindkd.pipelines.cxr.params import CxrParams
from mindkd.processing import images


def _dicom(i: int) -> str:
    """A dicom_id of the MIMIC-CXR form (5 groups of 8 hex digits)."""
    return f"{i:08x}-00000000-11111111-22222222-33333333"


@pytest.fixture
def export(tmp_path: Path) -> tuple[ImageFolder, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        subject, study, dicom = 10000000 + i, 50000000 + i, _dicom(i)
        path = image_path(tmp_path / "export", subject, study, dicom)
        path.parent.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (80, 64), dtype=np.uint8)).save(path, quality=95)
        rows.append((dicom, subject, study))
    table = pd.DataFrame(rows, columns=["dicom_id", "subject_id", "study_id"])
    return ImageFolder(tmp_path / "export"), table


def test_unchanged_inputs_reuse_the_store(export, tmp_path, monkeypatch) -> None:
    folder, table = export
    params = CxrParams(image_size=32, workers=1)
    store, failures = nodes.decode_images(table, folder, None, params)
    assert len(store.index) == 4 and failures.empty
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(store)
    saved = dataset.load()

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again although nothing changed")

    monkeypatch.setattr(images, "build_image_store", no_decode)
    again, _ = nodes.decode_images(table, folder, saved, params)
    assert again is saved
    dataset.save(again)  # saving the store onto itself writes nothing and keeps it readable
    np.testing.assert_array_equal(dataset.load().arrays["images"], store.arrays["images"])


def test_changed_size_or_file_decodes_again(export, tmp_path) -> None:
    folder, table = export
    store, _ = nodes.decode_images(table, folder, None, CxrParams(image_size=32, workers=1))
    bigger, _ = nodes.decode_images(table, folder, store, CxrParams(image_size=48, workers=1))
    assert bigger is not store and bigger.arrays["images"].shape == (4, 48, 48)
    first = image_path(folder.root, 10000000, 50000000, _dicom(0))
    Image.fromarray(np.zeros((80, 64), dtype=np.uint8)).save(first)
    redone, _ = nodes.decode_images(table, folder, store, CxrParams(image_size=32, workers=1))
    assert redone is not store
    assert redone.take("images", [_dicom(0)]).max() < 10


def test_a_hostile_metadata_row_is_a_counted_reported_skip(export, tmp_path) -> None:
    """A dicom_id that climbs out of files/ (and a negative study id) in the metadata: no file
    outside files/ is read, and both rows are listed in the failures table and the data report,
    through the CSV the catalog writes (``cxr_decode_failures``)."""
    folder, table = export
    secret = folder.root.parent / "outside_secret.jpg"  # five levels above a study folder
    Image.fromarray(np.full((64, 64), 255, dtype=np.uint8)).save(secret)
    hostile = pd.DataFrame(
        {
            "dicom_id": ["../../../../../outside_secret", _dicom(9)],
            "subject_id": [10000000, 10000000],
            "study_id": [50000000, -50000000],
        }
    )
    task_images = pd.concat([table, hostile], ignore_index=True)
    params = CxrParams(image_size=16, workers=1, max_failed_fraction=0.5)
    store, failures = nodes.decode_images(task_images, folder, None, params)
    assert store.keys.tolist() == table["dicom_id"].tolist()

    csv = CSVDataset(filepath=str(tmp_path / "decode_failures.csv"))
    csv.save(failures)
    task_images["ViewPosition"] = "AP"
    no_labels = pd.DataFrame(columns=["subject_id", "study_id", *FINDINGS])
    report = nodes.report_cxr(task_images, task_images, csv.load(), no_labels, no_labels, params)
    assert report["decode_failures"]["count"] == 2
    assert report["decode_failures"]["by_reason"] == {"invalid id": 2}
    assert report["decode_failures"]["files"] == [
        {"dicom_id": hostile.loc[0, "dicom_id"], "path": None, "reason": "invalid id: dicom_id"},
        {"dicom_id": _dicom(9), "path": None, "reason": "invalid id: study_id"},
    ]
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN for the missing paths
