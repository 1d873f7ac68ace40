"""MIMIC-CXR-JPG image paths: built only from ids of the MIMIC form, always inside files/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mindkd.mimic.cxr import image_id_problems, image_path, image_relpath, image_relpaths

DICOM = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"  # the form of a real MIMIC-CXR dicom_id


def _table(rows: list[tuple[object, object, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["dicom_id", "subject_id", "study_id"])


def test_mimic_ids_give_the_physionet_layout_in_either_case() -> None:
    table = _table([(DICOM, 10000032, 50414267), (DICOM.upper(), 19999987, 58971208)])
    assert image_id_problems(table).isna().all()
    assert image_relpaths(table).tolist() == [
        f"files/p10/p10000032/s50414267/{DICOM}.jpg",
        f"files/p19/p19999987/s58971208/{DICOM.upper()}.jpg",
    ]
    assert image_path("/data/cxr", 10000032, 50414267, DICOM) == Path(
        f"/data/cxr/files/p10/p10000032/s50414267/{DICOM}.jpg"
    )


@pytest.mark.parametrize(
    ("dicom_id", "subject_id", "study_id", "reason"),
    [
        ("../../../../../outside_secret", 10000032, 50414267, "invalid id: dicom_id"),
        (f"{DICOM}/../../x", 10000032, 50414267, "invalid id: dicom_id"),
        (f"/{DICOM}", 10000032, 50414267, "invalid id: dicom_id"),
        (DICOM[:-1], 10000032, 50414267, "invalid id: dicom_id"),  # 7 hex digits in a group
        (DICOM.replace("-", "_"), 10000032, 50414267, "invalid id: dicom_id"),
        (DICOM.replace("e", "g"), 10000032, 50414267, "invalid id: dicom_id"),  # not hex
        (f"{DICOM}\n", 10000032, 50414267, "invalid id: dicom_id"),
        (None, 10000032, 50414267, "invalid id: dicom_id"),
        (DICOM, "../..", 50414267, "invalid id: subject_id"),
        (DICOM, "1e7", 50414267, "invalid id: subject_id"),
        (DICOM, 10000032.5, 50414267, "invalid id: subject_id"),
        (DICOM, "10000032.0", 50414267, "invalid id: subject_id"),  # text must be digits
        (DICOM, 0, 50414267, "invalid id: subject_id"),
        (DICOM, 10000032, -50414267, "invalid id: study_id"),
        (DICOM, 10000032, "s50414267", "invalid id: study_id"),
        (DICOM, None, None, "invalid id: subject_id, study_id"),
        ("..", -1, "x", "invalid id: dicom_id, subject_id, study_id"),
    ],
)
def test_ids_that_cannot_name_a_file_get_no_path(
    dicom_id: object, subject_id: object, study_id: object, reason: str
) -> None:
    table = _table([(DICOM, 10000032, 50414267), (dicom_id, subject_id, study_id)])
    table.index = [7, 3]  # ids, not row positions
    problems = image_id_problems(table)
    assert problems.index.tolist() == [7, 3]
    assert pd.isna(problems[7]) and problems[3] == reason
    paths = image_relpaths(table)
    assert paths.index.tolist() == [7, 3]
    assert paths[7] == f"files/p10/p10000032/s50414267/{DICOM}.jpg" and pd.isna(paths[3])
    with pytest.raises(ValueError, match=reason):
        image_relpath(subject_id, study_id, dicom_id)


def test_digit_strings_whole_floats_and_nullable_integers_are_ids() -> None:
    path = f"files/p10/p10000032/s50414267/{DICOM}.jpg"
    assert image_relpaths(_table([(DICOM, "10000032", "50414267")])).tolist() == [path]
    blank = _table([(DICOM, 10000032, 50414267), (DICOM, None, 50414267)])  # reads as float
    assert blank["subject_id"].dtype == "float64"
    assert image_relpaths(blank).tolist()[0] == path
    assert image_id_problems(blank).tolist()[1] == "invalid id: subject_id"
    blank["subject_id"] = blank["subject_id"].astype("Int64")
    assert image_relpaths(blank).tolist()[0] == path
    assert image_id_problems(blank).tolist()[1] == "invalid id: subject_id"


def test_a_missing_id_column_is_named() -> None:
    with pytest.raises(KeyError, match="study_id"):
        image_relpaths(pd.DataFrame({"dicom_id": [DICOM], "subject_id": [1]}))
