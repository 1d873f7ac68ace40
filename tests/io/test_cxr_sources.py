"""The MIMIC-CXR-JPG tables: a metadata file whose ids are not numbers is refused by name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from mindkd.io.cxr_sources import CxrTableDataset
from mindkd.mimic.cxr import METADATA_COLUMNS, METADATA_FILE, CxrSchemaError

DICOM = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"


def _metadata(path: Path, subject_ids: list[object], study_ids: list[object]) -> Path:
    rows = [
        dict.fromkeys(METADATA_COLUMNS, "")
        | {"dicom_id": f"{DICOM[:-2]}{i:02d}", "subject_id": subject, "study_id": study}
        | {"ViewPosition": "AP", "Rows": 10, "Columns": 10, "StudyDate": 21500101}
        | {"StudyTime": 83015.0}
        for i, (subject, study) in enumerate(zip(subject_ids, study_ids, strict=True))
    ]
    pd.DataFrame(rows, columns=list(METADATA_COLUMNS)).to_csv(path / METADATA_FILE, index=False)
    return path / METADATA_FILE


def test_integer_ids_load_as_int64(tmp_path: Path) -> None:
    path = _metadata(tmp_path, [10000032, 10000033], [50414267, 53189527])
    table = CxrTableDataset(str(path)).load()
    assert table["subject_id"].dtype == "int64" and table["study_id"].tolist() == [
        50414267,
        53189527,
    ]


def test_ids_that_are_not_integers_are_refused_naming_file_columns_and_values(
    tmp_path: Path,
) -> None:
    path = _metadata(
        tmp_path,
        [10000032, "../../outside", "abc", "../../outside", 10000036],
        ["50414267", "50414268", "50414269", "1.5", ""],
    )
    with pytest.raises(DatasetError) as info:  # Kedro wraps what load raises
        CxrTableDataset(str(path)).load()
    assert isinstance(info.value.__cause__, CxrSchemaError)
    message = str(info.value.__cause__)
    assert message.startswith(f"{path}: values that are not numbers")
    assert "subject_id (3 value(s), e.g. ['../../outside', 'abc'])" in message
    assert "study_id (2 value(s), e.g. ['1.5', '(blank)'])" in message
