"""The stay-level cohort of ../shared/MIMIC.md and the task cohorts, with a cohort-flow record.

Every rule is one small function that returns the rows it keeps and, given a ``CohortFlow``, records
the step (rows kept, rows dropped, why). The shared cohort applies, in this order (the order
matters: a transfer is removed before admissions are counted, so an admission whose second stay was
a transfer keeps its other stay):

1. ``drop_missing_times``: stays without ``intime`` or ``outtime`` (none in a clean export);
2. ``drop_reversed_times``: stays whose ``outtime`` is before their ``intime``;
3. ``drop_impossible_ages``: an age at intime below 0 or above ``MAX_AGE`` (a corrupt date or
   anchor: a stay in the year 2300 gives 189), each kind counted apart from the minors;
4. ``drop_transfers``: ``first_careunit != last_careunit``;
5. ``keep_single_stay_admissions``: admissions (``hadm_id``) with exactly one remaining stay;
6. ``keep_adults``: age at intime = ``anchor_age + year(intime) - anchor_year >= 18``.

The first three remove records that cannot be true; the last three are the cohort rules of
../shared/MIMIC.md.

Task cohorts:

- ``ihm_cohort``: ``outtime - intime >= 48 h`` and at least one cleaned event in
  ``[intime, intime + 48 h)`` (``collect_stays_with_events``, computed bucket by bucket, a
  large bucket in pieces);
  label ``y`` from ``mindkd.processing.labels.mortality_labels``.
- ``pheno_cohort``: every cohort stay (optionally only those with an event), 25 phenotype labels.
- ``los_cohort``: the stays of the ihm rules (at least 48 h, an event in them), one column per
  class of the ICU stay remaining after 48 h (``mindkd.mimic.los``).

All three return ``subject_id, hadm_id, stay_id, intime, outtime, split`` and the labels, one row per
stay, sorted by ``stay_id``; ``split`` comes from ``subject_splits`` (a subject without one is an
error: splits are assigned once, over every subject, before cohorts are built).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mindkd.mimic.los import LOS_COLUMNS
from mindkd.mimic.phenotypes import PHENOTYPE_COLUMNS
from mindkd.processing.checks import require_columns
from mindkd.processing.labels import (
    MortalitySource,
    los_labels,
    mortality_labels,
    phenotype_labels,
)
from mindkd.processing.slicing import DEFAULT_SLICE_ROWS
from mindkd.processing.timeseries import (
    EVENT_COLUMNS,
    EventTable,
    event_arrays,
    iter_event_buckets,
    to_seconds,
)

logger = logging.getLogger(__name__)

ADULT_AGE = 18
#: Ages above this are no real age (MIMIC-IV caps anchor_age at 91; a subject's dates span years).
MAX_AGE = 120
COHORT_COLUMNS: tuple[str, ...] = ("subject_id", "hadm_id", "stay_id", "intime", "outtime", "split")
STAY_COLUMNS: tuple[str, ...] = (
    "subject_id",
    "hadm_id",
    "stay_id",
    "first_careunit",
    "last_careunit",
    "intime",
    "outtime",
)


class CohortError(ValueError):
    """Cohort inputs are inconsistent (missing columns, subjects without a split, bad options)."""


@dataclass(frozen=True)
class FlowStep:
    """One cohort step: the rows it kept, the rows it dropped and why."""

    step: str
    kept: int
    dropped: int
    reason: str


@dataclass
class CohortFlow:
    """The ordered cohort steps plus other counts (labels, events), for the stage's data report."""

    steps: list[FlowStep] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    def record(self, step: str, before: int, after: int, reason: str) -> None:
        self.steps.append(FlowStep(step, after, before - after, reason))
        logger.info(
            "Cohort step %-32s kept %7d, dropped %7d (%s)", step, after, before - after, reason
        )

    def copy(self) -> CohortFlow:
        """An independent copy (one per task, branching from the shared cohort)."""
        return copy.deepcopy(self)

    def to_frame(self) -> pd.DataFrame:
        """The cohort-flow table: ``step, kept, dropped, reason``, in order."""
        return pd.DataFrame(
            [(s.step, s.kept, s.dropped, s.reason) for s in self.steps],
            columns=["step", "kept", "dropped", "reason"],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"steps": [{step, kept, dropped, reason}, ...], "counts": {...}}``."""
        return {
            "steps": [
                {"step": s.step, "kept": s.kept, "dropped": s.dropped, "reason": s.reason}
                for s in self.steps
            ],
            "counts": copy.deepcopy(self.counts),
        }


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    require_columns(table, columns, name, CohortError)


def _keep(
    stays: pd.DataFrame,
    keep: pd.Series | np.ndarray,
    flow: CohortFlow | None,
    step: str,
    reason: str,
) -> pd.DataFrame:
    kept = stays[np.asarray(keep, dtype=bool)]
    if flow is not None:
        flow.record(step, len(stays), len(kept), reason)
    return kept


def drop_missing_times(stays: pd.DataFrame, flow: CohortFlow | None = None) -> pd.DataFrame:
    """Stays with both ``intime`` and ``outtime``."""
    _require(stays, ["intime", "outtime"], "icustays")
    keep = stays["intime"].notna() & stays["outtime"].notna()
    return _keep(stays, keep, flow, "drop_missing_times", "intime or outtime missing")


def drop_reversed_times(stays: pd.DataFrame, flow: CohortFlow | None = None) -> pd.DataFrame:
    """Stays that end at or after they start (``outtime >= intime``)."""
    _require(stays, ["intime", "outtime"], "icustays")
    keep = pd.to_datetime(stays["outtime"]) >= pd.to_datetime(stays["intime"])
    return _keep(stays, keep, flow, "drop_reversed_times", "outtime before intime")


def drop_impossible_ages(
    stays: pd.DataFrame, patients: pd.DataFrame, flow: CohortFlow | None = None
) -> pd.DataFrame:
    """Stays whose age at intime is a possible age, ``[0, MAX_AGE]`` (or unknown: no patient)."""
    age = age_at_intime(stays, patients)
    keep = age.isna() | age.between(0, MAX_AGE)
    reason = f"age at intime below 0 or above {MAX_AGE} (a corrupt date or anchor_year)"
    return _keep(stays, keep, flow, "drop_impossible_ages", reason)


def drop_transfers(stays: pd.DataFrame, flow: CohortFlow | None = None) -> pd.DataFrame:
    """Stays that stayed in one care unit (``first_careunit == last_careunit``)."""
    _require(stays, ["first_careunit", "last_careunit"], "icustays")
    keep = stays["first_careunit"].eq(stays["last_careunit"]) & stays["first_careunit"].notna()
    return _keep(stays, keep, flow, "drop_transfers", "first_careunit != last_careunit")


def keep_single_stay_admissions(
    stays: pd.DataFrame, flow: CohortFlow | None = None
) -> pd.DataFrame:
    """Stays whose admission (``hadm_id``) has exactly one stay among ``stays``."""
    _require(stays, ["hadm_id"], "icustays")
    per_admission = stays.groupby("hadm_id", dropna=False)["hadm_id"].transform("size")
    keep = per_admission.eq(1) & stays["hadm_id"].notna()
    return _keep(
        stays, keep, flow, "keep_single_stay_admissions", "admission has more than one ICU stay"
    )


def age_at_intime(stays: pd.DataFrame, patients: pd.DataFrame) -> pd.Series:
    """``anchor_age + year(intime) - anchor_year`` per stay (NaN without a patients row)."""
    _require(stays, ["subject_id", "intime"], "icustays")
    _require(patients, ["subject_id", "anchor_age", "anchor_year"], "patients")
    anchors = patients.drop_duplicates("subject_id").set_index("subject_id")
    subject = stays["subject_id"]
    age = (
        subject.map(anchors["anchor_age"])
        + pd.to_datetime(stays["intime"]).dt.year
        - subject.map(anchors["anchor_year"])
    )
    return age.rename("age")


def keep_adults(
    stays: pd.DataFrame, patients: pd.DataFrame, flow: CohortFlow | None = None
) -> pd.DataFrame:
    """Stays of patients aged at least 18 at intime (exactly 18 is kept)."""
    age = age_at_intime(stays, patients)
    no_patient = int(age.isna().sum())
    reason = "age at intime < 18 (anchor_age + year(intime) - anchor_year)"
    if no_patient:
        logger.warning(
            "%d stay(s) have no patients row and are dropped as adults unknown", no_patient
        )
        reason += f"; {no_patient} without a patients row"
    return _keep(stays, age.ge(ADULT_AGE), flow, "keep_adults", reason)


def build_stay_cohort(
    icustays: pd.DataFrame, patients: pd.DataFrame, flow: CohortFlow | None = None
) -> pd.DataFrame:
    """The shared cohort: every rule above, in order, on ``icu/icustays``."""
    _require(icustays, STAY_COLUMNS, "icustays")
    repeated = icustays["stay_id"].duplicated(keep=False)
    if repeated.any():
        ids = icustays.loc[repeated, "stay_id"].drop_duplicates()
        raise CohortError(
            f"icustays (<mimic_iv_dir>/icu/icustays.csv.gz) has {int(repeated.sum())} rows "
            f"sharing {len(ids)} stay_id value(s), e.g. {ids.head(5).tolist()}: a stay is one "
            "row in a MIMIC-IV export, so the file is corrupt or two exports were joined; "
            "download icu/icustays.csv.gz again"
        )
    if flow is not None:
        flow.record("icustays", len(icustays), len(icustays), "all ICU stays")
    stays = drop_missing_times(icustays, flow)
    stays = drop_reversed_times(stays, flow)
    stays = drop_impossible_ages(stays, patients, flow)
    stays = drop_transfers(stays, flow)
    stays = keep_single_stay_admissions(stays, flow)
    stays = keep_adults(stays, patients, flow)
    return stays.sort_values("stay_id").reset_index(drop=True)


def stays_with_events_in_window(
    events_bucket: EventTable, stays: pd.DataFrame, hours: float | None
) -> np.ndarray:
    """Sorted unique ``stay_id`` of ``stays`` with a cleaned event of this bucket in the window.

    The window is ``[intime, intime + hours)`` (an event at exactly ``intime + hours`` does not
    count), or ``[intime, outtime]`` when ``hours`` is None.
    """
    _require(stays, ["stay_id", "intime"] + (["outtime"] if hours is None else []), "stays")
    stay, seconds, _, _ = event_arrays(events_bucket)
    position = pd.Index(stays["stay_id"].to_numpy(dtype=np.int64)).get_indexer(stay)
    known = position >= 0
    position, seconds = position[known], seconds[known]
    intime = to_seconds(stays["intime"])[position]
    if hours is None:
        inside = (seconds >= intime) & (seconds <= to_seconds(stays["outtime"])[position])
    else:
        inside = (seconds >= intime) & (seconds < intime + round(hours * 3600))
    return np.unique(stay[known][inside])


def collect_stays_with_events(
    event_parts: Any,
    stays: pd.DataFrame,
    hours: float | None,
    slice_rows: int = DEFAULT_SLICE_ROWS,
) -> np.ndarray:
    """``stays_with_events_in_window`` over every bucket of ``event_parts``, one piece of at most
    ``slice_rows`` rows at a time (a stay with millions of events is read in pieces)."""
    found = [
        stays_with_events_in_window(piece, stays, hours)
        for pieces in iter_event_buckets(event_parts, EVENT_COLUMNS, slice_rows)
        for piece in pieces
    ]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def attach_splits(stays: pd.DataFrame, subject_splits: pd.DataFrame) -> pd.DataFrame:
    """``stays`` with the ``split`` of each subject; raises if a subject has none."""
    _require(subject_splits, ["subject_id", "split"], "subject_splits")
    if subject_splits["subject_id"].duplicated().any():
        raise CohortError("subject_splits has a subject_id more than once")
    merged = stays.drop(columns=["split"], errors="ignore").merge(
        subject_splits[["subject_id", "split"]], on="subject_id", how="left"
    )
    lacking = merged["split"].isna()
    if lacking.any():
        examples = merged.loc[lacking, "subject_id"].drop_duplicates().head(5).tolist()
        raise CohortError(
            f"{int(merged.loc[lacking, 'subject_id'].nunique())} subject(s) of the cohort have no "
            f"row in subject_splits (e.g. {examples}); assign splits over every subject first"
        )
    return merged


def _finish(
    stays: pd.DataFrame, labels: pd.DataFrame, subject_splits: pd.DataFrame
) -> pd.DataFrame:
    table = attach_splits(
        stays[["subject_id", "hadm_id", "stay_id", "intime", "outtime"]], subject_splits
    )
    table = table.merge(labels, on="stay_id", how="left", validate="one_to_one")
    return table.sort_values("stay_id").reset_index(drop=True)


def _first_hours_stays(
    stays: pd.DataFrame,
    stays_with_events: Iterable[int] | np.ndarray,
    hours: float,
    flow: CohortFlow | None,
    task: str,
) -> pd.DataFrame:
    """The stays a first-``hours`` task keeps: at least ``hours`` long, with an event in them.

    Flow steps ``<task>_min_stay`` and ``<task>_events_in_window``."""
    _require(stays, ["stay_id", "intime", "outtime"], "stays")
    span = pd.to_datetime(stays["outtime"]) - pd.to_datetime(stays["intime"])
    stays = _keep(
        stays,
        span.ge(pd.Timedelta(hours=hours)),
        flow,
        f"{task}_min_stay",
        f"stay shorter than {hours:g} h",
    )
    with_events = stays["stay_id"].isin(np.asarray(list(stays_with_events), dtype=np.int64))
    return _keep(
        stays, with_events, flow, f"{task}_events_in_window", f"no event in the first {hours:g} h"
    )


def ihm_cohort(
    stays: pd.DataFrame,
    stays_with_events: Iterable[int] | np.ndarray,
    admissions: pd.DataFrame,
    subject_splits: pd.DataFrame,
    *,
    hours: float,
    label_source: MortalitySource = "hospital_expire_flag",
    patients: pd.DataFrame | None = None,
    flow: CohortFlow | None = None,
) -> pd.DataFrame:
    """The in-hospital mortality cohort with label ``y``.

    Args:
        stays: the shared cohort (``build_stay_cohort``).
        stays_with_events: stay ids with a cleaned event in ``[intime, intime + hours)``
            (``collect_stays_with_events(events, stays, hours)``).
        admissions: ``hosp/admissions`` for the label.
        subject_splits: ``subject_id, split`` (``assign_splits``).
        hours: the observation window (the task parameter ``ihm.task.hours``, 48 by default).
        label_source: see ``mortality_labels``.
        patients: ``hosp/patients`` (``dod``) for the ``death_date`` rule.
        flow: the cohort flow to extend (pass a ``copy()`` of the shared one).
    """
    stays = _first_hours_stays(stays, stays_with_events, hours, flow, "ihm")
    labels, stats = mortality_labels(stays, admissions, source=label_source, patients=patients)
    if flow is not None:
        flow.counts.update(stats)
    return _finish(stays, labels, subject_splits)


def pheno_cohort(
    stays: pd.DataFrame,
    diagnoses_icd: pd.DataFrame,
    subject_splits: pd.DataFrame,
    stays_with_events: Iterable[int] | np.ndarray | None = None,
    *,
    require_events: bool = False,
    flow: CohortFlow | None = None,
) -> pd.DataFrame:
    """The phenotyping cohort: every cohort stay, one int8 column per phenotype.

    Args:
        stays: the shared cohort (``build_stay_cohort``).
        diagnoses_icd: ``hosp/diagnoses_icd`` (``icd_code`` as strings).
        subject_splits: ``subject_id, split``.
        stays_with_events: stay ids with an event in the stay (needed when ``require_events``).
        require_events: keep only stays with at least one event (``pheno.require_events``).
        flow: the cohort flow to extend.
    """
    if require_events:
        if stays_with_events is None:
            raise CohortError("pheno.require_events is true but no stays_with_events were given")
        with_events = stays["stay_id"].isin(np.asarray(list(stays_with_events), dtype=np.int64))
        stays = _keep(stays, with_events, flow, "pheno_events_in_stay", "no event in the stay")
    labels, stats = phenotype_labels(stays, diagnoses_icd)
    if flow is not None:
        flow.counts.update(stats)
    table = _finish(stays, labels, subject_splits)
    return table[[*COHORT_COLUMNS, *PHENOTYPE_COLUMNS]]


def los_cohort(
    stays: pd.DataFrame,
    stays_with_events: Iterable[int] | np.ndarray,
    subject_splits: pd.DataFrame,
    *,
    hours: float,
    flow: CohortFlow | None = None,
) -> pd.DataFrame:
    """The length-of-stay cohort: the stays of the ihm cohort (at least ``hours`` long, an event in
    the first ``hours``), one int8 column per class of the ICU stay remaining after ``hours``
    (``mindkd.processing.labels.los_labels``; ``mindkd.mimic.los`` for the classes)."""
    stays = _first_hours_stays(stays, stays_with_events, hours, flow, "los")
    labels, stats = los_labels(stays, hours)
    if flow is not None:
        flow.counts.update(stats)
    table = _finish(stays, labels, subject_splits)
    return table[[*COHORT_COLUMNS, *LOS_COLUMNS]]
