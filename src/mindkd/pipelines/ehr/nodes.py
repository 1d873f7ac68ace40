"""Nodes of the ``ehr`` pipeline: thin steps over ``mindkd.processing``.

Ingestion and cleaning return lazy event streams that ``EventPartsDataset`` writes bucket by bucket,
so no node holds chartevents in memory.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mindkd.io.array_store import ArrayStore
from mindkd.io.event_parts import EventParts
from mindkd.io.raw import MimicEventReader
from mindkd.processing import cohort, events, ingest, normalise, splits, subgroups, timeseries
from mindkd.processing.ingest import EventStream
from mindkd.tasks import CohortInputs, TaskParams

from .params import EhrParams, SplitParams

logger = logging.getLogger(__name__)


def ingest_events(
    chartevents: MimicEventReader,
    labevents: MimicEventReader,
    icustays: pd.DataFrame,
    admissions: pd.DataFrame,
    params: EhrParams,
) -> EventStream:
    """Pass 1: keep the 17 variables' items, attribute events to stays, route them to buckets.

    Height and weight charted in the look-back window before intime (same admission) are kept.
    """
    return ingest.ingest_events(
        chartevents,
        labevents,
        icustays,
        n_buckets=params.n_buckets,
        admissions=admissions,
        lookback=params.lookback,
    )


def clean_events(raw_events: EventParts, params: EhrParams) -> EventStream:
    """Pass 2, bucket by bucket: units, text values, ranges, duplicates, derived GCS total.

    A bucket larger than ``ehr.slice_rows`` is cleaned in (stay, charttime) slices."""
    return events.clean_events(
        raw_events,
        n_workers=params.clean_workers,
        ranges=params.ranges,
        slice_rows=params.slice_rows,
        scratch_dir=params.scratch_dir,
    )


def assign_subject_splits(
    patients: pd.DataFrame, cxr_metadata: pd.DataFrame, params: SplitParams
) -> pd.DataFrame:
    """Every subject of either modality, assigned train/val/test once by a seeded hash of its id."""
    subjects = pd.concat([patients["subject_id"], cxr_metadata["subject_id"]]).drop_duplicates()
    return splits.assign_splits(subjects.to_numpy(), params.seed, params.fractions)


def build_stay_cohort(
    icustays: pd.DataFrame, patients: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The cohort shared by all tasks (no transfers, one stay per admission, adults) and its flow."""
    flow = cohort.CohortFlow()
    stays = cohort.build_stay_cohort(icustays, patients, flow)
    return stays.reset_index(drop=True), flow.to_dict()


def report_ehr_events(clean: EventParts) -> dict[str, Any]:
    """The events part of the stage's data report: rows read, kept and dropped by reason."""
    return dict(clean.stats)


def select_task_cohort(
    stays: pd.DataFrame,
    stay_flow: dict[str, Any],
    clean: EventParts,
    admissions: pd.DataFrame,
    patients: pd.DataFrame,
    diagnoses_icd: pd.DataFrame,
    subject_splits: pd.DataFrame,
    params: TaskParams,
    ehr: EhrParams,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The task cohort with its labels, its cohort-flow table and its label counts."""
    task = params.definition
    flow = cohort.CohortFlow(
        steps=[cohort.FlowStep(**step) for step in stay_flow["steps"]],
        counts=dict(stay_flow["counts"]),
    )
    needs_events = task.window == "first_hours" or params.require_events
    with_events = (
        cohort.collect_stays_with_events(clean, stays, task.event_window_hours, ehr.slice_rows)
        if needs_events  # a full scan of the cleaned events: only when a rule reads it
        else np.empty(0, dtype=np.int64)
    )
    inputs = CohortInputs(
        stays=stays,
        stays_with_events=np.asarray(with_events, dtype=np.int64),
        admissions=admissions,
        diagnoses_icd=diagnoses_icd,
        subject_splits=subject_splits,
        patients=patients,
        label_source=params.label_source,
        require_events=params.require_events,
    )
    assert task.build_cohort is not None, f"task {task.name} defines no cohort builder"
    table = task.build_cohort(inputs, flow, task).reset_index(drop=True)
    flow.counts["split_sizes"] = table["split"].value_counts().to_dict()
    flow.counts["label_positives"] = {c: int(table[c].sum()) for c in task.labels}
    return table, flow.to_frame(), flow.to_dict()


def build_timeseries(
    clean: EventParts, task_cohort: pd.DataFrame, params: TaskParams, ehr: EhrParams
) -> ArrayStore:
    """Hourly values + masks of every cohort stay (raw units), keyed by stay_id."""
    task = params.definition
    window = (
        {"hours": task.hours} if task.window == "first_hours" else {"max_hours": params.max_hours}
    )
    if window.get("max_hours", 1) is None:
        raise ValueError(f"task {task.name}: set `{task.name}.task.max_hours` (whole-stay inputs)")
    return timeseries.build_hourly_store(
        clean,
        task_cohort,
        scratch_dir=ehr.scratch_dir,
        lookback=ehr.lookback,
        slice_rows=ehr.slice_rows,
        **window,
    )


def select_train_stays(task_cohort: pd.DataFrame) -> pd.DataFrame:
    """The train split's stays: the only rows any fitted statistic may see."""
    return task_cohort.loc[task_cohort["split"] == "train", ["stay_id", "subject_id"]]


def fit_normaliser(raw_series: ArrayStore, train_stays: pd.DataFrame) -> dict[str, Any]:
    """Per-channel mean/std of observed values over the train stays only."""
    return normalise.fit_normaliser(raw_series, train_stays["stay_id"].to_numpy()).to_dict()


def apply_normaliser(
    raw_series: ArrayStore, normaliser: dict[str, Any], ehr: EhrParams
) -> ArrayStore:
    """Every stay's model input: values standardised with the train statistics, categorical
    variables as ``ehr.categorical`` says (standardised or one-hot), masks untouched."""
    fitted = normalise.Normaliser.from_dict(normaliser)
    return normalise.apply_normaliser(
        raw_series, fitted, encoding=ehr.categorical, scratch_dir=ehr.scratch_dir
    )


def describe_subgroups(
    cohort_table: pd.DataFrame, patients: pd.DataFrame, admissions: pd.DataFrame
) -> pd.DataFrame:
    """Sex, age band, race group and insurance of every cohort stay (the fairness analysis)."""
    table = subgroups.stay_subgroups(cohort_table, patients, admissions)
    for attribute in subgroups.ATTRIBUTES:
        logger.info("%s: %s", attribute, table[attribute].value_counts().to_dict())
    return table
