"""Read-only Kedro datasets for the MIMIC-CXR-JPG export: its CSV tables and its image folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from mindkd.mimic.cxr import (
    CHEXPERT_FILE,
    LABEL_DTYPES,
    METADATA_DTYPES,
    METADATA_FILE,
    NEGBIO_FILE,
    SPLIT_DTYPES,
    SPLIT_FILE,
    CxrSchemaError,
    validate_columns,
)

_DTYPES = {
    METADATA_FILE: METADATA_DTYPES,
    CHEXPERT_FILE: LABEL_DTYPES,
    NEGBIO_FILE: LABEL_DTYPES,
    SPLIT_FILE: SPLIT_DTYPES,
}
_CONFIG_HINT = "Set mimic_cxr_jpg_dir in conf/local/globals.yml to the MIMIC-CXR-JPG 2.0.0 folder."


class CxrTableDataset(AbstractDataset[None, pd.DataFrame]):
    """One of the four MIMIC-CXR-JPG CSV files, read with its expected dtypes and columns checked."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(filepath)
        name = self._path.name
        if name not in _DTYPES:
            raise CxrSchemaError(f"{filepath}: not a MIMIC-CXR-JPG table; known: {sorted(_DTYPES)}")
        self._dtypes = _DTYPES[name]
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        if not self._path.is_file():
            raise CxrSchemaError(f"{self._path}: file not found. {_CONFIG_HINT}")
        header = pd.read_csv(self._path, nrows=0).columns
        validate_columns(header, str(self._path))
        dtypes = {c: t for c, t in self._dtypes.items() if c in header}
        try:
            return pd.read_csv(self._path, dtype=dtypes, usecols=list(dtypes))
        except (ValueError, TypeError) as exc:
            raise CxrSchemaError(
                f"{self._path}: {self._unparsable(dtypes) or f'a column does not parse: {exc}'}"
            ) from exc

    def _unparsable(self, dtypes: dict[str, str]) -> str:
        """Every numeric column holding values that are not numbers of its type, with examples."""
        numeric = [c for c, t in dtypes.items() if t != "str"]
        text = pd.read_csv(self._path, dtype=str, usecols=numeric)  # blanks and "NaN" read as NA
        problems = []
        for column in numeric:
            values, present = text[column], text[column].notna()
            if dtypes[column].lower().startswith("int"):
                digits = values.str.strip().str.fullmatch(r"[+-]?[0-9]+").fillna(False)
                bad = present & ~digits.astype(bool)
                if dtypes[column] == "int64":  # not nullable: a blank is a bad value too
                    bad |= ~present
            else:
                bad = present & pd.to_numeric(values, errors="coerce").isna()
            if bad.any():
                examples = values[bad].fillna("(blank)").drop_duplicates().head(5).tolist()
                problems.append(f"{column} ({int(bad.sum())} value(s), e.g. {examples})")
        if not problems:
            return ""
        return (
            f"values that are not numbers of the column's type: {'; '.join(problems)}. "
            "The MIMIC-CXR-JPG ids subject_id and study_id are integers."
        )

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is a raw PhysioNet file: read-only.")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}

    def _exists(self) -> bool:
        return self._path.is_file()


@dataclass(frozen=True)
class ImageFolder:
    """The root of the MIMIC-CXR-JPG export (``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg`` lie below it)."""

    root: Path


class ImageFolderDataset(AbstractDataset[None, ImageFolder]):
    """The MIMIC-CXR-JPG image folder, handed to the decode node as a location (no files are read)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._root = Path(path)
        self.metadata = metadata

    def load(self) -> ImageFolder:
        if not (self._root / "files").is_dir():
            raise CxrSchemaError(f"{self._root / 'files'}: image folder not found. {_CONFIG_HINT}")
        return ImageFolder(self._root)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._root} is the raw PhysioNet image folder: read-only.")

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._root)}

    def _exists(self) -> bool:
        return (self._root / "files").is_dir()
