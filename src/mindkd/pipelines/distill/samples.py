"""The distill stage's samples: one row per cohort stay, its optional image, its split and labels.

A *sample table* has the columns ``stay_id``, ``subject_id``, ``dicom_id`` (null without an image),
``split``, ``kind`` (``paired`` / ``ehr_only``) and the task labels (float32, NaN = unknown). For ihm
and pheno every label comes from a stay, so there are no CXR-only samples. Rows in the prepared
stores are looked up by key (``stay_id``, ``dicom_id``) when a dataset is built, never stored here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.processing import checks

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
KINDS: tuple[str, ...] = ("paired", "ehr_only")
ID_COLUMNS: tuple[str, ...] = ("stay_id", "subject_id", "dicom_id", "split", "kind")


class DistillDataError(ValueError):
    """Inputs of the distill stage that disagree with each other (keys, columns, splits)."""


def require_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    checks.require_columns(table, columns, name, DistillDataError)


def assemble_samples(
    cohort: pd.DataFrame,
    pairs: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    labels: Sequence[str],
) -> pd.DataFrame:
    """Every cohort stay with its paired image (or none), split, kind and labels.

    Raises ``DistillDataError`` listing every disagreement at once: stays without pairing row or
    time series, images missing from the store, splits that differ between cohort and pairs.
    """
    require_columns(cohort, ["stay_id", "subject_id", "split", *labels], "the task cohort")
    require_columns(pairs, ["stay_id", "dicom_id", "split"], "the pairs table")
    table = cohort[["stay_id", "subject_id", "split", *labels]].merge(
        pairs[["stay_id", "dicom_id", "split"]].rename(columns={"split": "pair_split"}),
        on="stay_id",
        how="left",
        validate="1:1",
        indicator=True,
    )
    problems: list[str] = []
    unpaired = table["_merge"] != "both"
    if unpaired.any():
        problems.append(
            f"{int(unpaired.sum())} cohort stay(s) have no row in the pairs table, e.g. "
            f"{table.loc[unpaired, 'stay_id'].head(5).tolist()} (re-run the pairing pipeline)"
        )
    moved = ~unpaired & (table["split"] != table["pair_split"])
    if moved.any():
        problems.append(f"{int(moved.sum())} stay(s) have another split in pairs than in cohort")
    no_series = ~table["stay_id"].isin(timeseries.keys).to_numpy()
    if no_series.any():
        problems.append(
            f"{int(no_series.sum())} stay(s) have no time series, e.g. "
            f"{table.loc[no_series, 'stay_id'].head(5).tolist()} (re-run the ehr pipeline)"
        )
    has_image = table["dicom_id"].notna()
    no_pixels = has_image & ~table["dicom_id"].isin(image_store.keys)
    if no_pixels.any():
        problems.append(
            f"{int(no_pixels.sum())} paired image(s) are not in the image store, e.g. "
            f"{table.loc[no_pixels, 'dicom_id'].head(5).tolist()} (re-run cxr and pairing)"
        )
    if problems:
        raise DistillDataError("distill inputs disagree: " + "; ".join(problems))
    table["kind"] = np.where(has_image, "paired", "ehr_only")
    table["dicom_id"] = table["dicom_id"].astype(object).where(has_image, None)
    out = table[[*ID_COLUMNS, *labels]].reset_index(drop=True)
    for column in labels:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(np.float32)
    return out


def select_setting(samples: pd.DataFrame, data: str) -> pd.DataFrame:
    """The samples a model trains / early-stops on: ``paired`` only, or ``partial`` (all stays)."""
    if data == "paired":
        return samples.loc[samples["kind"] == "paired"].reset_index(drop=True)
    if data == "partial":
        return samples.reset_index(drop=True)
    raise DistillDataError(f"data must be 'paired' or 'partial' (key `distill.data`), got {data!r}")


def split_rows(samples: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split, re-indexed."""
    return samples.loc[samples["split"] == split].reset_index(drop=True)


def describe(samples: pd.DataFrame) -> dict[str, int]:
    """Counts of samples per kind (for logs and reports)."""
    counts = samples["kind"].value_counts()
    return {kind: int(counts.get(kind, 0)) for kind in KINDS}


def label_matrix(samples: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """``(n, K)`` float32 labels, NaN where unknown."""
    return samples[list(labels)].to_numpy(dtype=np.float32, na_value=np.nan)
