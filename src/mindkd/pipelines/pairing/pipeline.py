"""Wiring of the ``pairing`` pipeline, one instance per task namespace."""

from kedro.pipeline import Node, Pipeline

from mindkd.tasks import TASKS

from . import nodes

SHARED = {"cxr_task_images", "cxr_image_store", "cxr_image_labels", "subject_splits"}


def _task() -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.pair_stays,
                ["cohort", "cxr_task_images", "cxr_image_store", "params:task"],
                "pairs",
                name="pair_stays",
            ),
            Node(
                nodes.select_cxr_only,
                ["cxr_image_labels", "pairs", "subject_splits"],
                "cxr_only",
                name="select_cxr_only",
            ),
            Node(
                nodes.report_pairing, ["pairs", "cxr_only"], "pairing_report", name="report_pairing"
            ),
            Node(
                nodes.plot_cohort_flow,
                ["cohort_flow", "pairing_report", "params:task"],
                "cohort_flow_plot",
                name="plot_cohort_flow",
            ),
        ]
    )


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [Pipeline(_task(), namespace=t, inputs=SHARED, tags=[t]) for t in TASKS], tags=["pairing"]
    )
