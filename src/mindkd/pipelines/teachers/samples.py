"""Which samples each teacher step sees: keys, splits and labels, as small tables.

Every table here has a ``key`` column (``stay_id`` for EHR, ``dicom_id`` for CXR), a ``split`` column
and, when the step trains or evaluates, one float column per label (NaN = unknown). Splits always come
from the tables that carry them (``cohort``, ``pairs``, ``cxr_only``, ``subject_splits``), which were
assigned once by subject; nothing here re-splits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.processing.checks import require_columns

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")


class TeacherDataError(ValueError):
    """Teacher inputs that disagree with each other (missing keys, columns, splits)."""


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    require_columns(table, columns, name, TeacherDataError)


def _labels_as_float(table: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    out = table.copy()
    for column in labels:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(np.float32)
    return out


def ehr_samples(cohort: pd.DataFrame, store: ArrayStore, labels: Sequence[str]) -> pd.DataFrame:
    """Every cohort stay: ``key`` (stay_id), ``split`` and the task labels.

    Raises ``TeacherDataError`` naming stays that have no time series (the ehr stage makes one per
    cohort stay, so a gap means the two outputs come from different runs).
    """
    _require(cohort, ["stay_id", "split", *labels], "the task cohort")
    missing = ~cohort["stay_id"].isin(store.keys).to_numpy()
    if missing.any():
        raise TeacherDataError(
            f"{int(missing.sum())} cohort stay(s) have no row in the time-series store, e.g. "
            f"{cohort.loc[missing, 'stay_id'].head(5).tolist()}; re-run the ehr pipeline"
        )
    table = cohort[["stay_id", "split", *labels]].rename(columns={"stay_id": "key"})
    return _labels_as_float(table, labels).reset_index(drop=True)


def paired_image_samples(
    pairs: pd.DataFrame, cohort: pd.DataFrame, labels: Sequence[str]
) -> pd.DataFrame:
    """Paired images with the task labels of their stay: ``key`` (dicom_id), stay_id, split, labels.

    One row per paired stay (an image paired with two stays appears twice, each with its stay's
    labels); stays without an image are left out.
    """
    _require(pairs, ["stay_id", "dicom_id", "split"], "the pairs table")
    _require(cohort, ["stay_id", *labels], "the task cohort")
    paired = pairs.loc[pairs["dicom_id"].notna(), ["stay_id", "dicom_id", "split"]]
    table = paired.merge(cohort[["stay_id", *labels]], on="stay_id", how="left", validate="m:1")
    unlabelled = table[list(labels)].isna().all(axis=1)
    if unlabelled.any():
        raise TeacherDataError(
            f"{int(unlabelled.sum())} paired stay(s) are not in the cohort, e.g. "
            f"{table.loc[unlabelled, 'stay_id'].head(5).tolist()}; re-run the pairing pipeline"
        )
    table = table.rename(columns={"dicom_id": "key"})[["key", "stay_id", "split", *labels]]
    return _labels_as_float(table, labels).reset_index(drop=True)


def pretrain_image_samples(
    image_labels: pd.DataFrame,
    subject_splits: pd.DataFrame,
    store: ArrayStore,
    findings: Sequence[str],
) -> pd.DataFrame:
    """Train- and val-split labelled images for CheXpert pre-training: ``key``, split, findings.

    The split of an image is its subject's split; test subjects' images are left out entirely, and
    val subjects' images only early-stop. Images missing from the store are dropped (logged).
    """
    _require(image_labels, ["dicom_id", "subject_id", *findings], "cxr_image_labels")
    _require(subject_splits, ["subject_id", "split"], "subject_splits")
    splits = subject_splits.drop_duplicates("subject_id").set_index("subject_id")["split"]
    split = image_labels["subject_id"].map(splits)
    if split.isna().any():
        orphans = image_labels.loc[split.isna(), "subject_id"].drop_duplicates()
        raise TeacherDataError(
            f"{len(orphans)} subject(s) of cxr_image_labels have no split in subject_splits, e.g. "
            f"{orphans.head(5).tolist()}; re-run the ehr pipeline (it assigns subject_splits)"
        )
    table = image_labels[["dicom_id", *findings]].assign(split=split.to_numpy())
    table = table.rename(columns={"dicom_id": "key"})
    in_store = table["key"].isin(store.keys).to_numpy()
    if not in_store.all():
        logger.warning("Pre-training: %d labelled image(s) are not in the store", (~in_store).sum())
    table = table.loc[in_store & table["split"].isin(["train", "val"]).to_numpy()]
    return _labels_as_float(table[["key", "split", *findings]], findings).reset_index(drop=True)


def image_cache_keys(
    pairs: pd.DataFrame, cxr_only: pd.DataFrame, store: ArrayStore
) -> pd.DataFrame:
    """Every image of the task a CXR member must score once: ``key`` (dicom_id) and ``split``.

    The union of the paired images and the task's CXR-only images (all splits), unique, restricted
    to images present in the store. Raises when an image is given two different splits.
    """
    _require(pairs, ["dicom_id", "split"], "the pairs table")
    _require(cxr_only, ["dicom_id", "split"], "the cxr_only table")
    both = pd.concat(
        [
            pairs.loc[pairs["dicom_id"].notna(), ["dicom_id", "split"]],
            cxr_only[["dicom_id", "split"]],
        ]
    ).drop_duplicates()
    conflicting = both["dicom_id"].duplicated(keep=False)
    if conflicting.any():
        raise TeacherDataError(
            f"{int(conflicting.sum())} image row(s) carry two different splits, e.g. "
            f"{both.loc[conflicting].head(4).to_dict('records')}; splits must be by subject"
        )
    in_store = both["dicom_id"].isin(store.keys).to_numpy()
    if not in_store.all():
        logger.warning("Logit cache: %d task image(s) are not in the store", (~in_store).sum())
    table = both.loc[in_store].rename(columns={"dicom_id": "key"})
    return table.reset_index(drop=True)


def split_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split, re-indexed."""
    return table.loc[table["split"] == split].reset_index(drop=True)


def label_matrix(table: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """``(n, K)`` float32 labels, NaN where unknown."""
    return table[list(labels)].to_numpy(dtype=np.float32)


def _digest(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            hashed = pd.util.hash_pandas_object(part.astype(str), index=False).to_numpy()
            digest.update(hashed.tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def fingerprint_inputs(
    cohort: pd.DataFrame,
    timeseries: ArrayStore,
    pairs: pd.DataFrame,
    cxr_only: pd.DataFrame,
    image_store: ArrayStore,
) -> dict[str, Any]:
    """Digests and sizes of what the teachers saw: keys and splits of every table, store shapes.

    Any change of cohort, pairing, CXR-only selection or stores (rows, order-independent keys,
    shapes) changes the digest, so a cache can be matched with the data it was made from.
    """
    tables = {
        "cohort": cohort[["stay_id", "split"]].sort_values("stay_id"),
        "pairs": pairs[["stay_id", "dicom_id", "split"]].sort_values("stay_id"),
        "cxr_only": cxr_only[["dicom_id", "split"]].sort_values("dicom_id"),
    }
    stores = {"timeseries": timeseries, "image_store": image_store}
    out: dict[str, Any] = {
        name: {"rows": len(table), "sha256": _digest(table)} for name, table in tables.items()
    }
    for name, store in stores.items():
        shapes = {array: list(values.shape) for array, values in sorted(store.arrays.items())}
        keys = store.keys.sort_values().to_frame()
        out[name] = {
            "rows": len(store),
            "shapes": shapes,
            "sha256": _digest(keys, shapes, store.metadata.get("fingerprint")),
        }
    out["sha256"] = _digest(*(out[name]["sha256"] for name in sorted(out)))
    return out
