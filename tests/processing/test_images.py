"""X-ray decode and the image store: draft decoding, crop, failures, pixel-exact round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from mindkd.io.array_store import ArrayStoreDataset
from mindkd.mimic.cxr import image_path
from mindkd.processing.images import (
    ImageDecodeError,
    build_image_store,
    load_xray,
    open_scaled,
)


def _write_jpeg(path: Path, pixels: np.ndarray, quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=quality)
    return path


def _textured(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 200, height)[:, None]
    return np.clip(rows + rng.normal(0, 20, (height, width)), 0, 255).astype(np.uint8)


@pytest.fixture
def cxr_root(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Six small images in the PhysioNet layout, of different sizes and aspect ratios."""
    root = tmp_path / "mimic-cxr-jpg"
    rows = []
    for i in range(6):
        subject, study, dicom = 10000000 + i, 50000000 + i, f"dcm{i:02d}"
        _write_jpeg(image_path(root, subject, study, dicom), _textured(120 + 10 * i, 90 + 7 * i, i))
        rows.append({"dicom_id": dicom, "subject_id": subject, "study_id": study})
    return root, pd.DataFrame(rows)


def test_draft_decodes_big_jpegs_at_reduced_scale(tmp_path: Path) -> None:
    path = _write_jpeg(tmp_path / "big.jpg", _textured(2000, 2400, 0))  # 2400 wide, 2000 tall
    with open_scaled(path, 224) as image:
        assert image.size == (300, 250)  # 1/8: still >= 224 on both sides
    with open_scaled(path, 300) as image:
        assert image.size == (600, 500)  # 1/8 would give 250 < 300, so 1/4
    with open_scaled(path, 1500) as image:
        assert image.size == (2400, 2000)  # no reduction possible
    decoded = load_xray(path, 224)
    assert decoded.shape == (224, 224)
    assert decoded.dtype == np.uint8


def test_load_xray_keeps_orientation_and_centre_crops(tmp_path: Path) -> None:
    tall = np.zeros((400, 200), np.uint8)
    tall[200:] = 255  # dark top, bright bottom
    out = load_xray(_write_jpeg(tmp_path / "tall.jpg", tall), 50)
    assert out.shape == (50, 50)
    assert out[:20].mean() < 10
    assert out[30:].mean() > 245

    wide = np.zeros((100, 300), np.uint8)
    wide[:, 100:200] = 255  # only the centre square is bright; the sides are cropped away
    out = load_xray(_write_jpeg(tmp_path / "wide.jpg", wide), 50)
    assert out[:, 5:45].min() > 230
    assert out.mean() > 220  # a squashing resize of the whole image would average ~85


def test_rgb_jpegs_are_converted_to_grayscale(tmp_path: Path) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 1] = 200
    out = load_xray(_write_jpeg(tmp_path / "rgb.jpg", rgb), 32)
    assert out.shape == (32, 32)
    assert abs(float(out.mean()) - 0.587 * 200) < 6


@pytest.mark.parametrize("workers", [1, 2])
def test_store_round_trips_pixel_exact_by_dicom_id(
    cxr_root: tuple[Path, pd.DataFrame], tmp_path: Path, workers: int
) -> None:
    root, table = cxr_root
    store, failures = build_image_store(table, root, 32, workers=workers, chunk_size=2)
    assert failures.empty
    assert store.index["dicom_id"].tolist() == table["dicom_id"].tolist()
    assert store.metadata["image_size"] == 32

    dataset = ArrayStoreDataset(filepath=str(tmp_path / "images"))
    dataset.save(store)
    loaded = dataset.load()
    assert isinstance(loaded.arrays["images"], np.memmap)
    wanted = ["dcm04", "dcm00", "dcm03"]
    expected = np.stack(
        [
            load_xray(image_path(root, row.subject_id, row.study_id, row.dicom_id), 32)
            for row in table.set_index("dicom_id").loc[wanted].reset_index().itertuples()
        ]
    )
    np.testing.assert_array_equal(loaded.take("images", wanted), expected)
    assert loaded.index.set_index("dicom_id").loc["dcm04", "subject_id"] == 10000004


def _break(root: Path, table: pd.DataFrame) -> None:
    """Truncate dcm01 to half its bytes, delete dcm04."""
    truncated = image_path(root, *table.loc[1, ["subject_id", "study_id", "dicom_id"]])
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    image_path(root, *table.loc[4, ["subject_id", "study_id", "dicom_id"]]).unlink()


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_and_truncated_jpegs_are_skipped_and_reported(
    cxr_root: tuple[Path, pd.DataFrame], workers: int
) -> None:
    root, table = cxr_root
    _break(root, table)
    store, failures = build_image_store(table, root, 16, workers=workers, max_failed_fraction=0.5)

    assert store.index["dicom_id"].tolist() == ["dcm00", "dcm02", "dcm03", "dcm05"]
    assert store.index["row"].tolist() == [0, 1, 2, 3]
    assert store.arrays["images"].shape == (4, 16, 16)
    assert failures["dicom_id"].tolist() == ["dcm01", "dcm04"]
    assert failures.loc[0, "reason"].startswith("unreadable: OSError: image file is truncated")
    assert failures.loc[1, "reason"] == "missing"
    assert failures.loc[1, "path"].endswith("files/p10/p10000004/s50000004/dcm04.jpg")
    good = table.loc[5]
    np.testing.assert_array_equal(
        store.take("images", ["dcm05"])[0],
        load_xray(image_path(root, good.subject_id, good.study_id, good.dicom_id), 16),
    )


def test_too_many_failures_raise_naming_count_fraction_and_config_key(
    cxr_root: tuple[Path, pd.DataFrame],
) -> None:
    root, table = cxr_root
    _break(root, table)
    with pytest.raises(
        ImageDecodeError, match=r"2 of 6 .*33\.33%.*cxr\.max_failed_fraction"
    ) as info:
        build_image_store(table, root, 16, workers=1, max_failed_fraction=0.2)
    assert "dcm04.jpg (missing)" in str(info.value)


def test_truncated_images_flag_is_refused(
    cxr_root: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, table = cxr_root
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageDecodeError, match="LOAD_TRUNCATED_IMAGES"):
        build_image_store(table, root, 16, workers=1)


def test_bad_inputs_are_refused(cxr_root: tuple[Path, pd.DataFrame]) -> None:
    root, table = cxr_root
    with pytest.raises(ValueError, match="duplicated dicom_id"):
        build_image_store(pd.concat([table, table.head(1)]), root, 16, workers=1)
    with pytest.raises(KeyError, match="study_id"):
        build_image_store(table.drop(columns="study_id"), root, 16, workers=1)
    with pytest.raises(ValueError, match=r"cxr\.max_failed_fraction must lie in \[0, 1\]"):
        build_image_store(table, root, 16, workers=1, max_failed_fraction=2.0)


def test_empty_table_gives_empty_store(tmp_path: Path) -> None:
    table = pd.DataFrame({"dicom_id": [], "subject_id": [], "study_id": []})
    store, failures = build_image_store(table, tmp_path, 8, workers=1)
    assert store.arrays["images"].shape == (0, 8, 8)
    assert failures.empty
