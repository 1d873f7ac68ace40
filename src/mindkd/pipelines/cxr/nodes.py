"""Nodes of the ``cxr`` pipeline: thin steps over ``mindkd.processing.images`` and ``.chexpert``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.io.cxr_sources import ImageFolder
from mindkd.mimic.cxr import FINDINGS
from mindkd.processing import chexpert, images, pairing

from .params import CxrParams

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition", "study_datetime")


def select_task_images(metadata: pd.DataFrame, params: CxrParams) -> pd.DataFrame:
    """The images worth decoding: the configured views (AP by default), with their study time."""
    selected = pairing.select_task_images(metadata, views=params.views)
    return selected[list(IMAGE_COLUMNS)].reset_index(drop=True)


def decode_images(
    task_images: pd.DataFrame,
    folder: ImageFolder,
    previous: ArrayStore | None,
    params: CxrParams,
) -> tuple[ArrayStore, pd.DataFrame]:
    """Decode every selected JPEG once into an (N, S, S) uint8 store keyed by dicom_id.

    ``previous`` is the store already on disk (or None): when its fingerprint matches the inputs it
    is returned as it is and nothing is decoded. Missing or unreadable files are skipped and returned
    as failures with their reason; too many of them stop the run (``cxr.max_failed_fraction``).
    """
    return images.decode_or_reuse(
        task_images,
        folder.root,
        previous,
        size=params.image_size,
        workers=params.workers,
        max_failed_fraction=params.max_failed_fraction,
        scratch_dir=params.scratch_dir,
    )


def label_images(
    task_images: pd.DataFrame,
    store: ArrayStore,
    chexpert_labels: pd.DataFrame,
    negbio_labels: pd.DataFrame,
    params: CxrParams,
) -> pd.DataFrame:
    """One row per decoded image with a label row: ids, study time and the 14 findings.

    Uncertain (−1) labels follow ``cxr.uncertain_policy``; blanks stay missing (masked out of the
    loss) unless ``cxr.blank_as_negative``.
    """
    raw = chexpert_labels if params.label_source == "chexpert" else negbio_labels
    labels = chexpert.apply_uncertain_policy(
        raw, params.uncertain_policy, blank_as_negative=params.blank_as_negative
    )
    decoded = task_images[task_images["dicom_id"].isin(store.keys)]
    return chexpert.label_images(decoded, labels).reset_index(drop=True)


def report_cxr(
    metadata: pd.DataFrame,
    task_images: pd.DataFrame,
    failures: pd.DataFrame,
    image_labels: pd.DataFrame,
    chexpert_labels: pd.DataFrame,
    params: CxrParams,
) -> dict[str, Any]:
    """The stage's data report: counts at every step and every image dropped, with the reason."""
    studies = task_images[["subject_id", "study_id"]].drop_duplicates()
    unlabelled = chexpert.studies_without_labels(studies, chexpert_labels)
    views = metadata["ViewPosition"].fillna("(empty)").value_counts()
    label_values = image_labels[list(FINDINGS)]
    return {
        "metadata_images": len(metadata),
        "images_by_view": {str(k): int(v) for k, v in views.items()},
        "views_kept": list(params.views),
        "task_images": len(task_images),
        "decode_failures": {
            "count": len(failures),
            "by_reason": images.failure_counts(failures),
            # an image whose ids name no file has no path (empty in the CSV): null, not NaN
            "files": failures.astype(object).where(failures.notna(), None).to_dict("records"),
        },
        "studies_without_label_row": len(unlabelled),
        "labelled_images": len(image_labels),
        "label_source": params.label_source,
        "uncertain_policy": params.uncertain_policy,
        "positives_per_finding": {
            f: int(np.nansum(label_values[f].to_numpy() == 1)) for f in FINDINGS
        },
    }
