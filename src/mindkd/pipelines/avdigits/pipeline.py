"""Wiring of the ``avdigits`` pipeline, in the ``avdigits`` namespace.

Outputs, in the schemas of the clinical task datasets: ``avdigits.cohort``, ``avdigits.timeseries``,
``avdigits.pairs``, ``avdigits.cxr_only``, ``avdigits.subgroups``, ``avdigits.image_store`` (the
``cxr_image_store`` analogue), ``avdigits.subject_splits`` and ``avdigits.data_report``.
"""

from kedro.pipeline import Node, Pipeline

from . import nodes

NAMESPACE = "avdigits"


def _stage() -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.index_recordings,
                "params:source",
                ["recordings", "skipped_recordings"],
                name="index_recordings",
            ),
            Node(
                nodes.assign_speaker_splits,
                ["recordings", "params:source"],
                "cohort",
                name="assign_speaker_splits",
            ),
            Node(
                nodes.extract_log_mel,
                ["recordings", "params:source"],
                "timeseries_raw",
                name="extract_log_mel",
            ),
            Node(nodes.select_train_stays, "cohort", "train_stays", name="select_train_stays"),
            Node(
                nodes.fit_mel_normaliser,
                ["timeseries_raw", "train_stays", "params:source"],
                "normaliser",
                name="fit_mel_normaliser",
            ),
            Node(
                nodes.apply_mel_normaliser,
                ["timeseries_raw", "normaliser"],
                "timeseries",
                name="apply_mel_normaliser",
            ),
            Node(nodes.load_digit_images, "params:source", "image_store", name="load_digit_images"),
            Node(
                nodes.split_digit_images,
                ["image_store", "params:source"],
                "digit_images",
                name="split_digit_images",
            ),
            Node(
                nodes.pair_samples,
                ["cohort", "digit_images", "params:source"],
                ["pairs", "cxr_only"],
                name="pair_samples",
            ),
            Node(nodes.describe_subgroups, "cohort", "subgroups", name="describe_subgroups"),
            Node(
                nodes.list_subject_splits,
                ["cohort", "cxr_only"],
                "subject_splits",
                name="list_subject_splits",
            ),
            Node(
                nodes.report_avdigits,
                [
                    "recordings",
                    "skipped_recordings",
                    "cohort",
                    "digit_images",
                    "pairs",
                    "cxr_only",
                    "timeseries",
                    "image_store",
                    "params:source",
                ],
                "data_report",
                name="report_avdigits",
            ),
        ]
    )


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(_stage(), namespace=NAMESPACE, tags=[NAMESPACE])
