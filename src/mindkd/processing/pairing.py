"""Pair ICU stays with chest X-rays, and collect the X-rays left for CXR-only training.

Rules (../shared/MIMIC.md, "Chest X-rays and pairing"):

- task images are those of the chosen views (``ViewPosition == "AP"`` by default);
- a stay is paired with the LATEST task image of the same subject taken in its window, both ends
  inclusive: ``[intime, intime + h]`` for a task of the first ``h`` hours (in-hospital mortality:
  the task's ``hours`` parameter, 48 by default), ``[intime, outtime]`` for phenotyping (``"stay"``).
  An image after the prediction cutoff would leak the future, so it is never chosen;
- ties (several images at the same study time) go to the largest dicom_id, so pairing is
  deterministic;
- splits are by subject: a stay, its image and every CXR-only image of the subject share the split
  of ``subject_splits``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from mindkd.mimic.cxr import study_datetime
from mindkd.processing.checks import require_columns

logger = logging.getLogger(__name__)

PairingWindow = Literal["stay"] | float
PAIR_COLUMNS: tuple[str, ...] = (
    "stay_id",
    "subject_id",
    "dicom_id",
    "study_id",
    "study_datetime",
    "split",
)
_METADATA_NEEDED = ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime")


class PairingError(ValueError):
    """Inputs of the pairing step are inconsistent (columns, splits, duplicate keys)."""


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    require_columns(table, columns, name, PairingError)


def select_task_images(metadata: pd.DataFrame, views: Sequence[str] = ("AP",)) -> pd.DataFrame:
    """The images whose ``ViewPosition`` is one of ``views`` (empty views never match).

    Args:
        metadata: the MIMIC-CXR-JPG metadata table.
        views: the view positions to keep (parameter ``cxr.views``; MIMIC-CXR spells them
            ``AP``, ``PA``, ``LATERAL``, ``LL``).

    Returns ``dicom_id, subject_id, study_id, ViewPosition, study_datetime`` of the kept images,
    in metadata order.
    """
    _require(metadata, _METADATA_NEEDED, "the MIMIC-CXR-JPG metadata")
    if isinstance(views, str) or not views:
        raise PairingError(f"views must be a non-empty list of view positions, got {views!r}")
    keep = metadata["ViewPosition"].isin(list(views)).to_numpy()
    selected = metadata.loc[keep, ["dicom_id", "subject_id", "study_id", "ViewPosition"]].copy()
    selected["study_datetime"] = study_datetime(
        metadata.loc[keep, "StudyDate"], metadata.loc[keep, "StudyTime"]
    )
    counts = metadata["ViewPosition"].fillna("<empty>").value_counts().to_dict()
    logger.info(
        "Task images: kept %d of %d with views %s (all views: %s)",
        len(selected),
        len(metadata),
        list(views),
        counts,
    )
    return selected.reset_index(drop=True)


def window_end(cohort: pd.DataFrame, window: PairingWindow) -> pd.Series:
    """The inclusive end of each stay's pairing window."""
    if window == "stay":
        return cohort["outtime"]
    if isinstance(window, int | float) and not isinstance(window, bool) and window >= 0:
        return cohort["intime"] + pd.to_timedelta(float(window), unit="h")
    raise PairingError(f"pairing window must be 'stay' or a number of hours >= 0, got {window!r}")


def pair_stays_with_images(
    cohort: pd.DataFrame, images: pd.DataFrame, window: PairingWindow
) -> pd.DataFrame:
    """One row per cohort stay with the latest image of its subject inside its window.

    Args:
        cohort: ``stay_id`` (unique), ``subject_id``, ``intime``, ``outtime`` (datetimes),
            ``split``.
        images: task images (``select_task_images``): ``dicom_id``, ``subject_id``,
            ``study_datetime``, optionally ``study_id``.
        window: a number h -> [intime, intime + h hours]; ``"stay"`` -> [intime, outtime].
            Both ends inclusive.

    Returns ``stay_id, subject_id, dicom_id, study_id, study_datetime, split`` in cohort order;
    dicom_id, study_id and study_datetime are null for stays without an image (EHR-only).
    """
    _require(cohort, ("stay_id", "subject_id", "intime", "outtime", "split"), "the cohort")
    _require(images, ("dicom_id", "subject_id", "study_datetime"), "the images table")
    for column, table in (("intime", cohort), ("outtime", cohort), ("study_datetime", images)):
        if not pd.api.types.is_datetime64_any_dtype(table[column]):
            raise PairingError(f"column {column!r} must be datetime64, got {table[column].dtype}")
    if cohort["stay_id"].duplicated().any():
        raise PairingError(
            "the cohort has duplicated stay_id values; pairing needs one row per stay"
        )

    stays = cohort[["stay_id", "subject_id", "intime", "split"]].copy()
    stays["window_end"] = window_end(cohort, window)
    image_columns = ["subject_id", "dicom_id", "study_datetime"]
    image_columns += ["study_id"] if "study_id" in images.columns else []
    candidates = stays[["stay_id", "subject_id", "intime", "window_end"]].merge(
        images[image_columns], on="subject_id", how="inner"
    )
    taken = candidates["study_datetime"]
    inside = (taken >= candidates["intime"]) & (taken <= candidates["window_end"])
    latest = (
        candidates.loc[inside.to_numpy()]
        .sort_values(["stay_id", "study_datetime", "dicom_id"])
        .drop_duplicates("stay_id", keep="last")
    )
    chosen = latest[["stay_id", *image_columns[1:]]]
    pairs = stays[["stay_id", "subject_id", "split"]].merge(
        chosen, on="stay_id", how="left", validate="one_to_one"
    )
    if "study_id" not in pairs.columns:
        pairs["study_id"] = pd.array([pd.NA] * len(pairs), dtype="Int64")
    else:
        pairs["study_id"] = pairs["study_id"].astype("Int64")
    pairs = pairs[list(PAIR_COLUMNS)]
    logger.info(
        "Pairing (window %s): %d of %d stays have an image", window, len(chosen), len(pairs)
    )
    return pairs


#: Splits that must hold paired stays: the CXR teachers are fine-tuned on train, selected on val.
SPLITS_NEEDING_PAIRS: tuple[str, ...] = ("train", "val")
_SOURCES_HINT = (
    "the MIMIC-IV export (`mimic_iv_dir`) and the MIMIC-CXR-JPG export (`mimic_cxr_jpg_dir`, both "
    "in conf/local/globals.yml) must cover the same patients; for the open MIMIC-IV demo, write "
    "a matching X-ray export with `python -m mindkd.demo OUT --cxr-for MIMIC_IV_DIR`"
)


def require_paired_stays(
    cohort: pd.DataFrame, images: pd.DataFrame, pairs: pd.DataFrame, task: str
) -> None:
    """Stop before any training when the two sources cannot make paired samples.

    Raises ``PairingError`` when no cohort subject has a task image at all (the exports do not
    belong together), or when a split of ``SPLITS_NEEDING_PAIRS`` has no paired stay. The message
    names the config keys of both sources and the counts found.
    """
    subjects = set(cohort["subject_id"].unique())
    shared = subjects & set(images["subject_id"].unique())
    if not shared:
        raise PairingError(
            f"{task}: no MIMIC-CXR-JPG subject overlaps the MIMIC-IV cohort: none of the "
            f"{len(subjects)} subjects of the {task} cohort has one of the {len(images)} task "
            f"images (of {images['subject_id'].nunique()} MIMIC-CXR subjects); {_SOURCES_HINT}"
        )
    paired = pairs.dropna(subset=["dicom_id"])["split"].value_counts()
    missing = [s for s in SPLITS_NEEDING_PAIRS if not paired.get(s, 0)]
    if missing:
        raise PairingError(
            f"{task}: no stay of split(s) {missing} has an image in its window (paired stays by "
            f"split: {paired.to_dict()}; {len(shared)} of {len(subjects)} cohort subjects have "
            f"task images), but the CXR teachers are fine-tuned on paired train stays and "
            f"selected on paired val stays; {_SOURCES_HINT}"
        )


def pairing_report(pairs: pd.DataFrame) -> dict[str, Any]:
    """Paired / EHR-only counts overall and per split (JSON-serialisable)."""
    _require(pairs, ("stay_id", "dicom_id", "split"), "the pairs table")
    paired = pairs["dicom_id"].notna()
    by_split: dict[str, dict[str, int]] = {}
    for split, group in paired.groupby(pairs["split"], sort=True):
        by_split[str(split)] = {
            "stays": len(group),
            "paired": int(group.sum()),
            "ehr_only": int((~group).sum()),
        }
    total = len(pairs)
    return {
        "stays": total,
        "paired": int(paired.sum()),
        "ehr_only": int((~paired).sum()),
        "paired_fraction": float(paired.mean()) if total else 0.0,
        "by_split": by_split,
    }


def cxr_only_samples(
    image_labels: pd.DataFrame, pairs: pd.DataFrame, subject_splits: pd.DataFrame
) -> pd.DataFrame:
    """Images not used as task pairs, each with its subject's split, for CXR teacher training.

    Train-split rows train the CXR teachers; val/test rows let them early-stop and be evaluated.
    Every row's split is its subject's split in ``subject_splits``, so no image crosses splits.

    Args:
        image_labels: one row per image: ``dicom_id``, ``subject_id`` and its labels (other
            columns are kept; a ``split`` column there is replaced).
        pairs: the task's pairs (``pair_stays_with_images``): its non-null dicom_ids are excluded.
        subject_splits: ``subject_id`` (unique), ``split``.

    Raises ``PairingError`` when an image's subject has no split, when ``subject_splits`` lists a
    subject twice, or when ``pairs`` puts a subject in another split than ``subject_splits``.
    """
    _require(image_labels, ("dicom_id", "subject_id"), "the labelled images table")
    _require(pairs, ("subject_id", "dicom_id", "split"), "the pairs table")
    _require(subject_splits, ("subject_id", "split"), "subject_splits")
    splits = _unique_subject_splits(subject_splits)
    _check_pairs_agree(pairs, splits)

    used = pairs["dicom_id"].dropna().unique()
    remaining = image_labels.loc[~image_labels["dicom_id"].isin(used).to_numpy()]
    remaining = remaining.drop(columns=["split"], errors="ignore")
    split = remaining["subject_id"].map(splits)
    if split.isna().any():
        orphans = remaining.loc[split.isna(), "subject_id"].drop_duplicates()
        raise PairingError(
            f"{len(orphans)} subject(s) with X-rays have no split in subject_splits, e.g. "
            f"{orphans.head(5).tolist()}; subject_splits must cover every subject of both "
            "modalities (made once by the ehr pipeline)"
        )
    samples = remaining.assign(split=split.to_numpy()).reset_index(drop=True)
    logger.info(
        "CXR-only samples: %d images (%s); %d task-paired images excluded",
        len(samples),
        samples["split"].value_counts().to_dict(),
        len(used),
    )
    return samples


def _unique_subject_splits(subject_splits: pd.DataFrame) -> pd.Series:
    duplicated = subject_splits["subject_id"].duplicated()
    if duplicated.any():
        examples = subject_splits.loc[duplicated, "subject_id"].head(5).tolist()
        raise PairingError(
            f"subject_splits lists {int(duplicated.sum())} subject(s) twice: {examples}"
        )
    return pd.Series(
        subject_splits["split"].to_numpy(), index=subject_splits["subject_id"].to_numpy()
    )


def _check_pairs_agree(pairs: pd.DataFrame, splits: pd.Series) -> None:
    expected = pairs["subject_id"].map(splits)
    disagree = expected.notna().to_numpy() & (expected.to_numpy() != pairs["split"].to_numpy())
    if np.any(disagree):
        examples = pairs.loc[disagree, ["subject_id", "split"]].head(5).to_dict("records")
        raise PairingError(
            f"{int(disagree.sum())} pair row(s) have a split other than their subject's split in "
            f"subject_splits, e.g. {examples}; build the cohort splits from subject_splits"
        )
