"""Which samples a model sees: keys, splits and labels, as small tables (the one sample builder).

Teachers (unimodal) read tables with a ``key`` column (``stay_id`` for EHR, ``dicom_id`` for CXR),
a ``split`` column and, when the step trains or evaluates, one float column per label
(NaN = unknown). The multimodal models read a *sample table*: ``stay_id``, ``subject_id``,
``dicom_id`` (null without an image), ``split``, ``kind`` (``paired`` / ``ehr_only``) and the task
labels (``assemble_samples``). Splits always come from the tables that carry them (``cohort``,
``pairs``, ``cxr_only``, ``subject_splits``), which were assigned once by subject; nothing here
re-splits. Rows of the prepared stores are looked up by key when a dataset is built, never stored
here.
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
from mindkd.training.data import MultiModalDataset, SampleTable

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
KINDS: tuple[str, ...] = ("paired", "ehr_only")
ID_COLUMNS: tuple[str, ...] = ("stay_id", "subject_id", "dicom_id", "split", "kind")


class SampleError(ValueError):
    """Inputs of a model's samples that disagree with each other (missing keys, columns, splits)."""


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    require_columns(table, columns, name, SampleError)


def _labels_as_float(table: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    out = table.copy()
    for column in labels:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(np.float32)
    return out


def ehr_samples(cohort: pd.DataFrame, store: ArrayStore, labels: Sequence[str]) -> pd.DataFrame:
    """Every cohort stay: ``key`` (stay_id), ``subject_id`` (when the cohort has it), ``split`` and
    the task labels.

    Raises ``SampleError`` naming stays that have no time series (the ehr stage makes one per
    cohort stay, so a gap means the two outputs come from different runs).
    """
    _require(cohort, ["stay_id", "split", *labels], "the task cohort")
    missing = ~cohort["stay_id"].isin(store.keys).to_numpy()
    if missing.any():
        raise SampleError(
            f"{int(missing.sum())} cohort stay(s) have no row in the time-series store, e.g. "
            f"{cohort.loc[missing, 'stay_id'].head(5).tolist()}; re-run the ehr pipeline"
        )
    subject = ["subject_id"] if "subject_id" in cohort.columns else []
    table = cohort[["stay_id", *subject, "split", *labels]].rename(columns={"stay_id": "key"})
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
    subject = ["subject_id"] if "subject_id" in pairs.columns else []
    paired = pairs.loc[pairs["dicom_id"].notna(), ["stay_id", *subject, "dicom_id", "split"]]
    table = paired.merge(cohort[["stay_id", *labels]], on="stay_id", how="left", validate="m:1")
    unlabelled = table[list(labels)].isna().all(axis=1)
    if unlabelled.any():
        raise SampleError(
            f"{int(unlabelled.sum())} paired stay(s) are not in the cohort, e.g. "
            f"{table.loc[unlabelled, 'stay_id'].head(5).tolist()}; re-run the pairing pipeline"
        )
    table = table.rename(columns={"dicom_id": "key"})[
        ["key", "stay_id", *subject, "split", *labels]
    ]
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
        raise SampleError(
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
        raise SampleError(
            f"{int(conflicting.sum())} image row(s) carry two different splits, e.g. "
            f"{both.loc[conflicting].head(4).to_dict('records')}; splits must be by subject"
        )
    in_store = both["dicom_id"].isin(store.keys).to_numpy()
    if not in_store.all():
        logger.warning("Logit cache: %d task image(s) are not in the store", (~in_store).sum())
    table = both.loc[in_store].rename(columns={"dicom_id": "key"})
    return table.reset_index(drop=True)


def assemble_samples(
    cohort: pd.DataFrame,
    pairs: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    labels: Sequence[str],
) -> pd.DataFrame:
    """Every cohort stay with its paired image (or none), split, kind and labels.

    Raises ``SampleError`` listing every disagreement at once: stays without pairing row or
    time series, images missing from the store, splits that differ between cohort and pairs.
    """
    _require(cohort, ["stay_id", "subject_id", "split", *labels], "the task cohort")
    _require(pairs, ["stay_id", "dicom_id", "split"], "the pairs table")
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
        raise SampleError("distill inputs disagree: " + "; ".join(problems))
    table["kind"] = np.where(has_image, "paired", "ehr_only")
    table["dicom_id"] = table["dicom_id"].astype(object).where(has_image, None)
    return _labels_as_float(table[[*ID_COLUMNS, *labels]].reset_index(drop=True), labels)


def select_setting(samples: pd.DataFrame, data: str) -> pd.DataFrame:
    """The samples a model trains / early-stops on: ``paired`` only, or ``partial`` (all stays)."""
    if data == "paired":
        return samples.loc[samples["kind"] == "paired"].reset_index(drop=True)
    if data == "partial":
        return samples.reset_index(drop=True)
    raise SampleError(f"data must be 'paired' or 'partial' (key `distill.data`), got {data!r}")


def split_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split, re-indexed."""
    return table.loc[table["split"] == split].reset_index(drop=True)


def describe(samples: pd.DataFrame) -> dict[str, int]:
    """Counts of samples per kind (for logs and reports)."""
    counts = samples["kind"].value_counts()
    return {kind: int(counts.get(kind, 0)) for kind in KINDS}


def label_matrix(table: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """``(n, K)`` float32 labels, NaN where unknown."""
    return table[list(labels)].to_numpy(dtype=np.float32, na_value=np.nan)


def series_lengths(store: ArrayStore) -> np.ndarray:
    """Hours observed per row of a time-series store (1 for a row no stay uses)."""
    lengths = np.ones(len(store.arrays["values"]), dtype=np.int64)
    lengths[store.index["row"].to_numpy()] = store.index["length"].to_numpy()
    return lengths


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


def sample_dataset(
    samples: pd.DataFrame,
    labels: Sequence[str],
    *,
    key: str,
    timeseries: ArrayStore | None = None,
    ehr_key: str | None = None,
    image_store: ArrayStore | None = None,
    cxr_key: str | None = None,
    image_mean: float = 0.0,
    image_std: float = 1.0,
    teacher: dict[str, np.ndarray] | None = None,
) -> MultiModalDataset:
    """The dataset of a sample table, every model's (teachers, students, baselines).

    Rows of the stores are looked up by key: ``ehr_key`` in ``timeseries`` (every sample has EHR)
    and ``cxr_key`` in ``image_store`` (a null key: no image). A model without a modality passes
    neither its store nor its key. ``key`` is the column carried into the predictions.
    """
    n = len(samples)
    ehr_row = np.full(n, -1, dtype=np.int64)
    if timeseries is not None and ehr_key is not None:
        ehr_row = timeseries.rows(samples[ehr_key])
    cxr_row = np.full(n, -1, dtype=np.int64)
    if image_store is not None and cxr_key is not None:
        has_image = samples[cxr_key].notna().to_numpy()
        if has_image.any():
            cxr_row[has_image] = image_store.rows(samples.loc[has_image, cxr_key])
    table = SampleTable(
        ehr_row=ehr_row,
        cxr_row=cxr_row,
        labels=label_matrix(samples, labels),
        teacher=teacher or {},
        keys=samples[key].to_numpy(),
    )
    return MultiModalDataset(
        table,
        ehr_values=None if timeseries is None else timeseries.arrays["values"],
        ehr_lengths=None if timeseries is None else series_lengths(timeseries),
        images=None if image_store is None else image_store.arrays["images"],
        image_mean=image_mean,
        image_std=image_std,
    )
