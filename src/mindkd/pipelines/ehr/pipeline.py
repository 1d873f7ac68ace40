"""Wiring of the ``ehr`` pipeline: shared ingestion, then one task pipeline per namespace."""

from kedro.pipeline import Node, Pipeline

from mindkd.tasks import TASKS

from . import nodes

SHARED = {
    "events_clean",
    "stay_cohort",
    "stay_cohort_flow",
    "admissions",
    "patients",
    "diagnoses_icd",
    "subject_splits",
}


def _shared() -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.ingest_events,
                ["chartevents", "labevents", "icustays", "admissions", "params:ehr"],
                "events_raw",
                name="ingest_events",
            ),
            Node(
                nodes.clean_events,
                ["events_raw", "params:ehr"],
                "events_clean",
                name="clean_events",
            ),
            Node(
                nodes.assign_subject_splits,
                ["patients", "cxr_metadata", "params:split"],
                "subject_splits",
                name="assign_subject_splits",
            ),
            Node(
                nodes.build_stay_cohort,
                ["icustays", "patients"],
                ["stay_cohort", "stay_cohort_flow"],
                name="build_stay_cohort",
            ),
            Node(
                nodes.report_ehr_events, "events_clean", "ehr_data_report", name="report_ehr_events"
            ),
        ]
    )


def _task() -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.select_task_cohort,
                [
                    "stay_cohort",
                    "stay_cohort_flow",
                    "events_clean",
                    "admissions",
                    "patients",
                    "diagnoses_icd",
                    "subject_splits",
                    "params:task",
                    "params:ehr",
                ],
                ["cohort", "cohort_flow", "cohort_report"],
                name="select_task_cohort",
            ),
            Node(
                nodes.build_timeseries,
                ["events_clean", "cohort", "params:task", "params:ehr"],
                "timeseries_raw",
                name="build_timeseries",
            ),
            Node(nodes.select_train_stays, "cohort", "train_stays", name="select_train_stays"),
            Node(
                nodes.describe_subgroups,
                ["cohort", "patients", "admissions"],
                "subgroups",
                name="describe_subgroups",
            ),
            Node(
                nodes.fit_normaliser,
                ["timeseries_raw", "train_stays"],
                "normaliser",
                name="fit_normaliser",
            ),
            Node(
                nodes.apply_normaliser,
                ["timeseries_raw", "normaliser", "params:ehr"],
                "timeseries",
                name="apply_normaliser",
            ),
        ]
    )


def create_pipeline(**kwargs: object) -> Pipeline:
    per_task = [
        Pipeline(_task(), namespace=task, inputs=SHARED, parameters={"params:ehr"}, tags=[task])
        for task in TASKS
    ]
    return Pipeline([_shared(), *per_task], tags=["ehr"])
