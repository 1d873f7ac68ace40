"""ArrayStore and ArrayStoreDataset: round trips, versions, memory maps, key lookups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError, Version

from mindkd.io.array_store import ArrayStore, ArrayStoreDataset, write_npy


def _store(n: int = 5, seed: int = 0, image_size: int = 4) -> ArrayStore:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, image_size, image_size), dtype=np.uint8)
    values = rng.normal(size=(n, 3, 2)).astype(np.float32)
    # Rows deliberately not in index order: lookups must go through the row column.
    rows = np.arange(n)[::-1].copy()
    index = pd.DataFrame(
        {"dicom_id": [f"d{i}" for i in range(n)], "row": rows, "subject_id": np.arange(n) + 10}
    )
    return ArrayStore(
        arrays={"images": images, "values": values},
        index=index,
        key="dicom_id",
        metadata={"image_size": image_size},
    )


def test_round_trip_loads_memory_mapped_arrays_with_equal_values(tmp_path: Path) -> None:
    store = _store()
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(store)
    loaded = dataset.load()

    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
        "images.npy",
        "index.parquet",
        "meta.json",
        "values.npy",
    ]
    for name in ("images", "values"):
        assert isinstance(loaded.arrays[name], np.memmap)
        assert loaded.arrays[name].mode == "r"
        np.testing.assert_array_equal(loaded.arrays[name], store.arrays[name])
    pd.testing.assert_frame_equal(loaded.index, store.index)
    assert loaded.key == "dicom_id"
    assert loaded.metadata == {"image_size": 4}
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert meta["key"] == "dicom_id"
    assert meta["n_rows"] == 5
    assert meta["arrays"]["images"] == {"file": "images.npy", "shape": [5, 4, 4], "dtype": "uint8"}
    assert meta["arrays"]["values"]["dtype"] == "float32"
    # d0 lives in the last row.
    np.testing.assert_array_equal(loaded.take("images", ["d0"])[0], store.arrays["images"][4])


def test_rows_follow_keys_and_missing_keys_are_named() -> None:
    store = _store()
    np.testing.assert_array_equal(store.rows(["d0", "d3", "d0"]), [4, 1, 4])
    np.testing.assert_array_equal(store.rows(np.array(["d4"])), [0])
    with pytest.raises(KeyError, match=r"2 of 3 dicom_id value\(s\) are not in the store.*'nope'"):
        store.rows(["d1", "nope", "gone"])


@pytest.mark.parametrize(
    ("index", "arrays", "message"),
    [
        (pd.DataFrame({"k": ["a", "a"], "row": [0, 1]}), {"x": np.zeros(2)}, "duplicates"),
        (pd.DataFrame({"k": ["a", "b"], "row": [0, 2]}), {"x": np.zeros(2)}, r"\[0, 2\)"),
        (
            pd.DataFrame({"k": ["a"], "row": [0]}),
            {"x": np.zeros(2), "y": np.zeros(3)},
            "differ in their first axis",
        ),
        (pd.DataFrame({"k": ["a"]}), {"x": np.zeros(1)}, "lacks column 'row'"),
        (pd.DataFrame({"k": ["a"], "row": [0]}), {"../x": np.zeros(1)}, "not a plain file name"),
    ],
)
def test_invalid_stores_are_refused(
    index: pd.DataFrame, arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ArrayStore(arrays=arrays, index=index, key="k")


def test_key_defaults_to_first_non_row_column() -> None:
    store = ArrayStore(
        arrays={"x": np.zeros((2, 1))}, index=pd.DataFrame({"row": [1, 0], "stay_id": [30, 31]})
    )
    assert store.key == "stay_id"
    np.testing.assert_array_equal(store.rows([31]), [0])


def test_versions_are_saved_side_by_side_and_load_by_version(tmp_path: Path) -> None:
    first, second = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"
    path = str(tmp_path / "images")
    ArrayStoreDataset(filepath=path, version=Version(None, first)).save(_store(seed=1))
    ArrayStoreDataset(filepath=path, version=Version(None, second)).save(_store(seed=2))

    assert (tmp_path / "images" / first / "images" / "meta.json").is_file()
    latest = ArrayStoreDataset(filepath=path, version=Version(None, None)).load()
    old = ArrayStoreDataset(filepath=path, version=Version(first, None)).load()
    np.testing.assert_array_equal(latest.arrays["values"], _store(seed=2).arrays["values"])
    np.testing.assert_array_equal(old.arrays["values"], _store(seed=1).arrays["values"])
    assert not np.array_equal(old.arrays["values"], latest.arrays["values"])
    with pytest.raises(DatasetError, match="must not exist"):
        ArrayStoreDataset(filepath=path, version=Version(None, first)).save(_store())


def test_catalog_entry_with_versioning_and_metadata(tmp_path: Path) -> None:
    catalog = DataCatalog.from_config(
        {
            "cxr_images": {
                "type": "mindkd.io.array_store.ArrayStoreDataset",
                "filepath": str(tmp_path / "cxr_images"),
                "versioned": True,
                "metadata": {"kedro-viz": {"preview": False}},
            }
        }
    )
    catalog.save("cxr_images", _store())
    loaded = catalog.load("cxr_images")
    assert isinstance(loaded.arrays["images"], np.memmap)
    np.testing.assert_array_equal(loaded.arrays["images"], _store().arrays["images"])
    assert len(list((tmp_path / "cxr_images").iterdir())) == 1  # one timestamped version


def test_memmap_views_are_copied_file_wise(tmp_path: Path) -> None:
    source = np.lib.format.open_memmap(
        tmp_path / "scratch.npy", mode="w+", dtype=np.uint8, shape=(6, 8, 8)
    )
    source[:] = np.arange(6, dtype=np.uint8)[:, None, None]
    view = source[2:5]  # a memmap whose bytes start 2 rows into the data of the file
    index = pd.DataFrame({"dicom_id": ["a", "b", "c"], "row": [0, 1, 2]})
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(ArrayStore(arrays={"images": view}, index=index))

    loaded = dataset.load().arrays["images"]
    assert loaded.shape == (3, 8, 8)
    np.testing.assert_array_equal(loaded[:, 0, 0], [2, 3, 4])
    np.testing.assert_array_equal(loaded, source[2:5])


def test_write_npy_chunks_non_contiguous_arrays(tmp_path: Path) -> None:
    array = np.arange(60, dtype=np.int32).reshape(6, 10)[:, ::2]  # not contiguous
    write_npy(array, tmp_path / "a.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)


def test_unversioned_save_replaces_previous_content(tmp_path: Path) -> None:
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(_store(seed=1))
    first = dataset.load()
    dataset.save(first)  # saving a store memory-mapped from the same folder must still work
    dataset.save(_store(seed=3))
    np.testing.assert_array_equal(dataset.load().arrays["values"], _store(seed=3).arrays["values"])
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # no staging folder left behind


def test_empty_store_round_trips(tmp_path: Path) -> None:
    empty = ArrayStore(
        arrays={"images": np.zeros((0, 4, 4), np.uint8)},
        index=pd.DataFrame({"dicom_id": pd.Series([], dtype=str), "row": np.array([], np.int64)}),
    )
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "store"))
    dataset.save(empty)
    loaded = dataset.load()
    assert loaded.arrays["images"].shape == (0, 4, 4)
    assert len(loaded) == 0


def test_missing_store_is_reported(tmp_path: Path) -> None:
    dataset = ArrayStoreDataset(filepath=str(tmp_path / "nothing"))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"nothing is not a complete dataset: meta\.json"):
        dataset.load()
