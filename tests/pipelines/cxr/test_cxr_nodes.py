"""The cxr nodes: decode once, and a re-run with unchanged inputs decodes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mindkd.io.array_store import ArrayStoreDataset
from mindkd.io.cxr_sources import ImageFolder
from mindkd.mimic.cxr import image_path
from mindkd.pipelines.cxr import nodes
from mindkd.pipelines.cxr.params import CxrParams
from mindkd.processing import images


@pytest.fixture
def export(tmp_path: Path) -> tuple[ImageFolder, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        subject, study, dicom = 10000000 + i, 50000000 + i, f"d{i}"
        path = image_path(tmp_path, subject, study, dicom)
        path.parent.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (80, 64), dtype=np.uint8)).save(path, quality=95)
        rows.append((dicom, subject, study))
    table = pd.DataFrame(rows, columns=["dicom_id", "subject_id", "study_id"])
    return ImageFolder(tmp_path), table


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
    first = image_path(folder.root, 10000000, 50000000, "d0")
    Image.fromarray(np.zeros((80, 64), dtype=np.uint8)).save(first)
    redone, _ = nodes.decode_images(table, folder, store, CxrParams(image_size=32, workers=1))
    assert redone is not store
    assert redone.take("images", ["d0"]).max() < 10
