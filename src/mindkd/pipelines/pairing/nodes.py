"""Nodes of the ``pairing`` pipeline: thin steps over ``mindkd.processing.pairing``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mindkd.evaluation.plots import cohort_flow_figure
from mindkd.io.array_store import ArrayStore
from mindkd.processing import pairing
from mindkd.tasks import TaskParams


def pair_stays(
    task_cohort: pd.DataFrame, task_images: pd.DataFrame, store: ArrayStore, params: TaskParams
) -> pd.DataFrame:
    """One row per cohort stay with its latest decoded image inside the task's window, or none.

    The window ends at the prediction cutoff (``ihm``: intime + 48 h; ``pheno``: outtime), both ends
    inclusive: an image taken after it would leak the future into the input.
    """
    decoded = task_images[task_images["dicom_id"].isin(store.keys)]
    window = params.definition.pairing_window
    pairs = pairing.pair_stays_with_images(task_cohort, decoded, window)
    pairing.require_paired_stays(task_cohort, decoded, pairs, params.name)
    return pairs


def select_cxr_only(
    image_labels: pd.DataFrame, pairs: pd.DataFrame, subject_splits: pd.DataFrame
) -> pd.DataFrame:
    """Labelled images not used as this task's pairs, each in its subject's split (CXR teachers)."""
    return pairing.cxr_only_samples(image_labels, pairs, subject_splits).reset_index(drop=True)


def report_pairing(pairs: pd.DataFrame, cxr_only: pd.DataFrame) -> dict[str, Any]:
    """Paired / EHR-only stays per split, and the CXR-only images per split."""
    report = pairing.pairing_report(pairs)
    report["cxr_only_images"] = cxr_only["split"].value_counts().to_dict()
    return report


def plot_cohort_flow(
    cohort_flow: pd.DataFrame, pairing_report: dict[str, Any], params: TaskParams
) -> Figure:
    """The task's cohort funnel (stays kept and dropped at each step) and its final cohort by
    split, paired (EHR + X-ray) and EHR-only."""
    return cohort_flow_figure(cohort_flow, pairing_report, title=f"{params.name}:")
