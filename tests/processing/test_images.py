"""X-ray decode and the image store: draft decoding, crop, failures, pixel-exact round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from mindkd.io.array_store import ArrayStoreDataset
from mindkd.mimic.cxr import image_path
from mindkd.processing import images as images_module
from mindkd.processing.images import (
    ImageDecodeError,
    build_image_store,
    failure_counts,
    load_xray,
    open_scaled,
)

# MIMIC-CXR-form dicom_ids (5 groups of 8 hex digits) of the six fixture images.
DCM = [f"0000dc{i:02x}-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd" for i in range(6)]


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
        subject, study, dicom = 10000000 + i, 50000000 + i, DCM[i]
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
    wanted = [DCM[4], DCM[0], DCM[3]]
    expected = np.stack(
        [
            load_xray(image_path(root, row.subject_id, row.study_id, row.dicom_id), 32)
            for row in table.set_index("dicom_id").loc[wanted].reset_index().itertuples()
        ]
    )
    np.testing.assert_array_equal(loaded.take("images", wanted), expected)
    assert loaded.index.set_index("dicom_id").loc[DCM[4], "subject_id"] == 10000004


def _break(root: Path, table: pd.DataFrame) -> None:
    """Truncate image 1 to half its bytes, delete image 4."""
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

    assert store.index["dicom_id"].tolist() == [DCM[0], DCM[2], DCM[3], DCM[5]]
    assert store.index["row"].tolist() == [0, 1, 2, 3]
    assert store.arrays["images"].shape == (4, 16, 16)
    assert failures["dicom_id"].tolist() == [DCM[1], DCM[4]]
    assert failures.loc[0, "reason"].startswith("unreadable: OSError: image file is truncated")
    assert failures.loc[1, "reason"] == "missing"
    assert failures.loc[1, "path"].endswith(f"files/p10/p10000004/s50000004/{DCM[4]}.jpg")
    good = table.loc[5]
    np.testing.assert_array_equal(
        store.take("images", [DCM[5]])[0],
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
    assert f"{DCM[4]}.jpg (missing)" in str(info.value)


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


# ---------------------------------------------------------------- only files under files/ are read
HOSTILE_DICOM = "../../../../../outside_secret"  # five levels up from sSTUDY: next to the export


@pytest.fixture
def outside_secret(cxr_root: tuple[Path, pd.DataFrame]) -> Path:
    """A readable JPEG next to the export (outside files/), where a hostile id would lead."""
    root, _ = cxr_root
    secret = _write_jpeg(root.parent / "outside_secret.jpg", np.full((64, 64), 255, np.uint8))
    study = image_path(root, 10000000, 50000000, DCM[0]).parent
    # a row with that dicom_id would read it if its path were built
    assert (study / f"{HOSTILE_DICOM}.jpg").resolve() == secret.resolve()
    return secret


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every file the decoder opens (in this process: workers=1)."""
    opened: list[Path] = []
    original = images_module.open_scaled

    def recording(path, size):
        opened.append(Path(path).resolve())
        return original(path, size)

    monkeypatch.setattr(images_module, "open_scaled", recording)
    return opened


def test_ids_that_cannot_name_a_file_build_no_path_and_are_skipped_and_reported(
    cxr_root: tuple[Path, pd.DataFrame], outside_secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, table = cxr_root
    hostile = pd.DataFrame(
        {
            "dicom_id": [HOSTILE_DICOM, "0000dc07-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd", "x/../y"],
            "subject_id": [10000000, "10000000/../../..", -5],
            "study_id": [50000000, 50000000, 50000000],
        }
    )
    table = pd.concat([table.astype(object), hostile], ignore_index=True)
    table.loc[2, "dicom_id"] = DCM[2].upper()  # MIMIC's hex ids are accepted in either case
    _write_jpeg(image_path(root, 10000002, 50000002, DCM[2].upper()), _textured(80, 80, 2))
    opened = _opened(monkeypatch)

    store, failures = build_image_store(table, root, 16, workers=1, max_failed_fraction=0.5)

    assert store.index["dicom_id"].tolist() == table["dicom_id"].head(6).tolist()
    assert failures["dicom_id"].tolist() == hostile["dicom_id"].tolist()
    assert failures["reason"].tolist() == [
        "invalid id: dicom_id",
        "invalid id: subject_id",
        "invalid id: dicom_id, subject_id",
    ]
    assert failures["path"].isna().all()  # no path was built from them
    assert outside_secret.resolve() not in opened
    assert all(path.is_relative_to((root / "files").resolve()) for path in opened)
    assert len(opened) == 6


def test_a_link_out_of_files_is_not_followed_but_a_linked_files_folder_is(
    cxr_root: tuple[Path, pd.DataFrame], outside_secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, table = cxr_root
    linked = image_path(root, *table.loc[3, ["subject_id", "study_id", "dicom_id"]])
    linked.unlink()
    linked.symlink_to(outside_secret)
    opened = _opened(monkeypatch)

    store, failures = build_image_store(table, root, 16, workers=1, max_failed_fraction=0.5)

    assert failures["dicom_id"].tolist() == [DCM[3]]
    assert failures.loc[0, "reason"].startswith("outside files/: ")
    assert failures.loc[0, "path"] == str(linked)
    assert outside_secret.resolve() not in opened and len(store.index) == 5

    # an export whose whole files/ folder is a link (e.g. to another disk) is read as usual
    elsewhere = root.parent / "other-disk"
    (root / "files").rename(elsewhere)
    (root / "files").symlink_to(elsewhere, target_is_directory=True)
    linked.unlink()
    _write_jpeg(linked, _textured(90, 90, 3))
    store, failures = build_image_store(table, root, 16, workers=1)
    assert failures.empty and store.index["dicom_id"].tolist() == DCM


@pytest.mark.parametrize("workers", [1, 2])
def test_the_failure_summary_counts_every_kind(
    cxr_root: tuple[Path, pd.DataFrame], outside_secret: Path, workers: int
) -> None:
    root, table = cxr_root
    _break(root, table)
    hostile = pd.DataFrame({"dicom_id": [HOSTILE_DICOM], "subject_id": [1], "study_id": [2]})
    linked = image_path(root, *table.loc[3, ["subject_id", "study_id", "dicom_id"]])
    linked.unlink()
    linked.symlink_to(outside_secret)
    table = pd.concat([table, hostile], ignore_index=True)
    with pytest.raises(ImageDecodeError) as info:
        build_image_store(table, root, 16, workers=workers, max_failed_fraction=0.1)
    message = str(info.value)
    assert "4 of 7 X-ray images" in message
    for kind in ("'unreadable': 1", "'missing': 1", "'outside files/': 1", "'invalid id': 1"):
        assert kind in message, message
    assert f"dicom_id {HOSTILE_DICOM!r} (invalid id: dicom_id)" in message
    store, failures = build_image_store(table, root, 16, workers=workers, max_failed_fraction=0.6)
    assert failure_counts(failures) == {
        "unreadable": 1,
        "missing": 1,
        "outside files/": 1,
        "invalid id": 1,
    }
    assert store.index["dicom_id"].tolist() == [DCM[0], DCM[2], DCM[5]]
