"""Wiring of the ``cxr`` pipeline."""

from kedro.pipeline import Node, Pipeline

from . import nodes


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.select_task_images,
                ["cxr_metadata", "params:cxr"],
                "cxr_task_images",
                name="select_task_images",
            ),
            Node(
                nodes.decode_images,
                ["cxr_task_images", "cxr_files", "cxr_image_store_previous", "params:cxr"],
                ["cxr_image_store", "cxr_decode_failures"],
                name="decode_images",
            ),
            Node(
                nodes.label_images,
                ["cxr_task_images", "cxr_image_store", "cxr_chexpert", "cxr_negbio", "params:cxr"],
                "cxr_image_labels",
                name="label_images",
            ),
            Node(
                nodes.report_cxr,
                [
                    "cxr_metadata",
                    "cxr_task_images",
                    "cxr_decode_failures",
                    "cxr_image_labels",
                    "cxr_chexpert",
                    "params:cxr",
                ],
                "cxr_data_report",
                name="report_cxr",
            ),
        ],
        tags=["cxr"],
    )
