"""What the MIMIC-CXR-JPG 2.0.0 export means: files, columns, findings, image paths, study times.

Everything here follows the PhysioNet layout described in ../shared/MIMIC.md:

- four gzip CSV files at the root (metadata, CheXpert labels, NegBio labels, the official split);
- images under ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg`` where ``XX`` is the first two digits of the
  subject id (``image_relpaths`` builds these paths, and only from ids of the MIMIC form);
- ``StudyDate`` is an integer ``YYYYMMDD`` and ``StudyTime`` a float ``HHMMSS.fff`` that lost its
  leading zeros before 10:00 (``83015.25`` is 08:30:15.25).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

# The 14 CheXpert findings, in the column order of the chexpert / negbio label files.
FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)

METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv.gz"
CHEXPERT_FILE = "mimic-cxr-2.0.0-chexpert.csv.gz"
NEGBIO_FILE = "mimic-cxr-2.0.0-negbio.csv.gz"
SPLIT_FILE = "mimic-cxr-2.0.0-split.csv.gz"
IMAGES_DIR = "files"

METADATA_COLUMNS: tuple[str, ...] = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
LABEL_COLUMNS: tuple[str, ...] = ("subject_id", "study_id", *FINDINGS)
CHEXPERT_COLUMNS: tuple[str, ...] = LABEL_COLUMNS
NEGBIO_COLUMNS: tuple[str, ...] = LABEL_COLUMNS
SPLIT_COLUMNS: tuple[str, ...] = ("dicom_id", "study_id", "subject_id", "split")

# Expected columns of each CSV file, by file name.
CSV_COLUMNS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        METADATA_FILE: METADATA_COLUMNS,
        CHEXPERT_FILE: CHEXPERT_COLUMNS,
        NEGBIO_FILE: NEGBIO_COLUMNS,
        SPLIT_FILE: SPLIT_COLUMNS,
    }
)

# Dtypes to read the CSV files with (pandas names). Ids are integers except dicom_id (a string).
# Label columns are floats because blanks (not mentioned) are missing values.
METADATA_DTYPES: MappingProxyType[str, str] = MappingProxyType(
    {
        "dicom_id": "str",
        "subject_id": "int64",
        "study_id": "int64",
        "PerformedProcedureStepDescription": "str",
        "ViewPosition": "str",
        "Rows": "Int64",
        "Columns": "Int64",
        "StudyDate": "Int64",
        "StudyTime": "float64",
        "ProcedureCodeSequence_CodeMeaning": "str",
        "ViewCodeSequence_CodeMeaning": "str",
        "PatientOrientationCodeSequence_CodeMeaning": "str",
    }
)
LABEL_DTYPES: MappingProxyType[str, str] = MappingProxyType(
    {"subject_id": "int64", "study_id": "int64", **dict.fromkeys(FINDINGS, "float32")}
)
SPLIT_DTYPES: MappingProxyType[str, str] = MappingProxyType(
    {"dicom_id": "str", "study_id": "int64", "subject_id": "int64", "split": "str"}
)

# A MIMIC-CXR dicom_id: 5 groups of 8 hex digits joined by '-' (upper or lower case accepted).
DICOM_ID_PATTERN = r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{8}){4}"
# Reason (prefix) of an image whose ids cannot name a file (image_id_problems).
INVALID_ID = "invalid id"

# Values of the official split file (the project makes its own subject splits: processing.splits).
OFFICIAL_SPLITS: tuple[str, ...] = ("train", "validate", "test")
# View positions seen in the metadata (plus empty).
VIEW_POSITIONS: tuple[str, ...] = ("AP", "PA", "LATERAL", "LL")


class CxrSchemaError(ValueError):
    """A MIMIC-CXR-JPG file lacks expected columns or holds impossible values."""


def validate_columns(columns: Iterable[str], file_name: str) -> None:
    """Raise ``CxrSchemaError`` naming ``file_name`` and every expected column it lacks.

    ``file_name`` is one of the four CSV names (``METADATA_FILE`` ...) or a path ending with one.
    Extra columns are allowed.
    """
    name = Path(file_name).name
    if name not in CSV_COLUMNS:
        raise CxrSchemaError(
            f"unknown MIMIC-CXR-JPG file {file_name!r}; known: {sorted(CSV_COLUMNS)}"
        )
    present = set(columns)
    missing = [column for column in CSV_COLUMNS[name] if column not in present]
    if missing:
        raise CxrSchemaError(
            f"{file_name}: missing column(s) {missing}; expected the MIMIC-CXR-JPG 2.0.0 columns "
            f"{list(CSV_COLUMNS[name])}. Check that mimic_cxr_jpg_dir points at the PhysioNet "
            "export."
        )


def image_id_problems(table: pd.DataFrame) -> pd.Series:
    """Per row, why its ids cannot name an image file of the export, or ``<NA>`` when they can.

    ``dicom_id`` must be ``DICOM_ID_PATTERN`` (5 groups of 8 hex digits joined by ``-``, either
    case); ``subject_id`` and ``study_id`` positive integers (integers, whole floats or strings of
    digits). The reason is ``"invalid id: "`` followed by the failing columns:

    >>> ok = "0a1b2c3d-00000000-11111111-22222222-3333333A"
    >>> table = pd.DataFrame({"dicom_id": [ok, "../../../../x", ok],
    ...                       "subject_id": [10000032, 10000032, 0], "study_id": [5, 5, -1]})
    >>> image_id_problems(table).tolist()
    [<NA>, 'invalid id: dicom_id', 'invalid id: subject_id, study_id']
    """
    _require_id_columns(table, "image_id_problems")
    bad = {
        "dicom_id": ~table["dicom_id"]
        .astype("string")
        .str.fullmatch(DICOM_ID_PATTERN)
        .fillna(False)
        .astype(bool),
        "subject_id": _positive_ids(table["subject_id"]).isna(),
        "study_id": _positive_ids(table["study_id"]).isna(),
    }
    columns = pd.Series("", index=table.index, dtype="string")
    for name, mask in bad.items():
        columns = columns.mask(mask, columns + ", " + name)
    return (INVALID_ID + ": " + columns.str.removeprefix(", ")).where(columns != "")


def image_relpaths(table: pd.DataFrame) -> pd.Series:
    """Each image's path relative to the export root: ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``.

    The one place image paths are built from ids. Ids are checked first (``image_id_problems``): a
    row whose ids could not name a file gets ``<NA>``, so no path is ever built from, e.g., a
    ``dicom_id`` of ``../../x`` or a ``subject_id`` of ``-1``; every path built is the layout above.
    """
    ok = image_id_problems(table).isna().to_numpy()
    subject = _positive_ids(table["subject_id"]).astype("string")
    study = _positive_ids(table["study_id"]).astype("string")
    built = (
        IMAGES_DIR
        + "/p"
        + subject.str[:2]
        + "/p"
        + subject
        + "/s"
        + study
        + "/"
        + table["dicom_id"].astype("string")
        + ".jpg"
    )
    return built.where(ok).rename("path")


def image_relpath(subject_id: int, study_id: int, dicom_id: str) -> str:
    """One image's path relative to the export root (``image_relpaths`` on one row).

    Raises ``ValueError`` when an id could not name a file of the export.
    """
    row = pd.DataFrame({"dicom_id": [dicom_id], "subject_id": [subject_id], "study_id": [study_id]})
    path = image_relpaths(row).iloc[0]
    if pd.isna(path):
        raise ValueError(
            f"{image_id_problems(row).iloc[0]} (dicom_id={dicom_id!r}, subject_id={subject_id!r}, "
            f"study_id={study_id!r}): MIMIC-CXR ids are {DICOM_ID_PATTERN} and positive integers"
        )
    return str(path)


def image_path(root: str | Path, subject_id: int, study_id: int, dicom_id: str) -> Path:
    """One image's path under the export ``root``: ``root/files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``."""
    return Path(root) / image_relpath(subject_id, study_id, dicom_id)


def _require_id_columns(table: pd.DataFrame, caller: str) -> None:
    missing = [c for c in ("subject_id", "study_id", "dicom_id") if c not in table.columns]
    if missing:
        raise KeyError(f"{caller} needs columns {missing} (have {list(table.columns)})")


def _positive_ids(values: pd.Series) -> pd.Series:
    """``values`` as ``Int64``, ``<NA>`` where a value is not a positive integer: an integer, a
    whole float (a column with a blank reads as float), or a string of at most 18 digits."""
    if pd.api.types.is_integer_dtype(values.dtype):
        ids = values.astype("Int64")
    elif pd.api.types.is_float_dtype(values.dtype):
        whole = np.isfinite(values) & (values == np.floor(values)) & (values.abs() < 2**53)
        ids = values.where(whole).astype("Int64")
    else:
        text = values.astype("string")
        digits = text.str.fullmatch(r"[0-9]{1,18}").fillna(False).astype(bool)
        ids = pd.to_numeric(text.where(digits), errors="coerce").astype("Int64")
    return ids.where((ids > 0).fillna(False).astype(bool))


def study_datetime(
    study_date: pd.Series | np.ndarray, study_time: pd.Series | np.ndarray
) -> pd.Series:
    """Vectorised study date-time from ``StudyDate`` (int YYYYMMDD), ``StudyTime`` (HHMMSS.fff).

    The integer part of StudyTime is read as if left-padded to six digits (``83015.25`` is
    08:30:15.25, ``15.0`` is 00:00:15); the fraction is kept to the microsecond. A missing date or
    time gives NaT.
    Impossible dates or times (month 13, minute 75, ...) raise ``CxrSchemaError`` with examples.

    Returns a ``datetime64[us]`` Series (aligned with ``study_date``'s index when it is a Series).
    """
    index = study_date.index if isinstance(study_date, pd.Series) else None
    date = pd.Series(np.asarray(study_date, dtype="float64"), index=index)
    time = pd.Series(np.asarray(study_time, dtype="float64"), index=index)
    if len(date) != len(time):
        raise ValueError(f"StudyDate has {len(date)} values but StudyTime {len(time)}")

    whole = np.floor(time)
    hours = whole // 10000
    minutes = (whole // 100) % 100
    seconds = whole % 100
    micros = np.round((time - whole) * 1e6)
    bad_time = (hours >= 24) | (minutes >= 60) | (seconds >= 60) | (time < 0)
    if bad_time.any():
        examples = time[bad_time].head(5).tolist()
        raise CxrSchemaError(
            f"StudyTime: {int(bad_time.sum())} value(s) are not a time of day HHMMSS.fff, "
            f"e.g. {examples}"
        )

    day = pd.to_datetime(date.astype("Int64").astype("string"), format="%Y%m%d", errors="coerce")
    bad_date = day.isna() & date.notna()
    if bad_date.any():
        examples = date[bad_date].head(5).astype("int64").tolist()
        raise CxrSchemaError(
            f"StudyDate: {int(bad_date.sum())} value(s) are not dates YYYYMMDD: {examples}"
        )

    offset_us = ((hours * 3600 + minutes * 60 + seconds) * 1_000_000 + micros).astype("Int64")
    result = day.astype("datetime64[us]") + pd.to_timedelta(offset_us, unit="us")
    return result.astype("datetime64[us]").rename("study_datetime")
