"""Wiring of the ``distill`` pipeline: per task, samples and teacher targets, one node chain per
model variant, the teacher ensembles from the cache, and the evaluation.

Namespaces (each a group in kedro-viz): ``<task>.distill`` (samples, targets, evaluation),
``<task>.distill.<variant>`` for ``mind``, ``no_kd``, ``zero_filled``, ``medfuse``, ``mckd`` and
``<task>.distill.teachers``. Run one task with ``--namespaces ihm``; one variant (after a first
full run has written the samples and targets) with ``--namespaces ihm.distill.mind``. Inputs from
other stages: ``<task>.cohort``, ``<task>.timeseries``, ``<task>.pairs``, ``<task>.teacher_logits``,
``cxr_image_store`` and the optional ``demo_truth_stays``; nothing upstream is run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kedro.pipeline import Node, Pipeline

from mindkd.tasks import TASKS, TEACHER_MEMBERS, get_task
from mindkd.training.samples import fingerprint_inputs
from mindkd.training.spec import VARIANTS

from . import nodes

SHARED = {"cxr_image_store", "demo_truth_stays"}
TASK_INPUTS = {"cohort", "timeseries", "pairs", "cxr_only", "subgroups", "teacher_logits"}
PARAMETERS = {"params:distill", "params:task"}
CHAIN_INPUTS = {
    "teacher_sizes",
    "image_normaliser",
    "train_samples",
    "val_samples",
    "test_samples",
    "kd_targets",
    "timeseries",
    "cxr_image_store",
}
SPECIFY = {
    "mind": nodes.specify_mind,
    "no_kd": nodes.specify_no_kd,
    "zero_filled": nodes.specify_zero_filled,
    "medfuse": nodes.specify_medfuse,
    "mckd": nodes.specify_mckd,
}
HEADS = ("routed", "ehr", "cxr", "fused")


def samples_and_targets(members: Mapping[str, Sequence[str]]) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.assemble_distill_samples,
                ["cohort", "pairs", "timeseries", "cxr_image_store", "params:task"],
                "samples",
                name="assemble_distill_samples",
            ),
            Node(
                nodes.select_distill_samples,
                ["samples", "params:distill"],
                ["train_samples", "val_samples", "test_samples"],
                name="select_distill_samples",
            ),
            Node(
                nodes.fit_image_normaliser,
                ["train_samples", "cxr_image_store"],
                "image_normaliser",
                name="fit_image_normaliser",
            ),
            Node(
                fingerprint_inputs,  # the digest the teachers recorded, of the data now
                ["cohort", "timeseries", "pairs", "cxr_only", "cxr_image_store"],
                "input_fingerprint",
                name="fingerprint_distill_inputs",
            ),
            Node(
                nodes.teacher_targets_reader(members),
                ["teacher_logits", "samples", "input_fingerprint", "params:distill", "params:task"],
                "kd_targets",
                name="read_teacher_targets",
            ),
            Node(
                nodes.count_teacher_parameters,
                "teacher_logits",
                "teacher_sizes",
                name="count_teacher_parameters",
            ),
        ]
    )


def _variant(variant: str) -> Pipeline:
    stores = ["timeseries", "cxr_image_store"]
    chain = [
        Node(
            SPECIFY[variant],
            ["params:distill", "params:task", "teacher_sizes", "image_normaliser", "timeseries"],
            "spec",
            name=f"specify_{variant}",
        ),
        Node(
            nodes.train_model,
            ["spec", "train_samples", "val_samples", "kd_targets", *stores],
            ["weights", "history"],
            name="train_model",
        ),
        Node(nodes.track_training_curves, "history", "curves", name="track_training_curves"),
        Node(
            nodes.predict_test_set,
            ["weights", "spec", "test_samples", *stores],
            "predictions",
            name="predict_test_set",
        ),
        Node(
            nodes.measure_compression,
            ["weights", "spec", "test_samples", *stores, "params:distill"],
            "compression",
            name="measure_compression",
        ),
    ]
    if variant == "mind":
        chain.append(
            Node(nodes.export_student, ["weights", "spec"], "mlflow_model", name="export_student")
        )
    return Pipeline(
        chain,
        namespace=variant,
        inputs=CHAIN_INPUTS,
        outputs=_chain_outputs(variant),
        parameters=PARAMETERS,
        tags=[f"distill_{variant}"],
    )


def _chain_outputs(model: str) -> dict[str, str]:
    """What the evaluation reads from a model's chain: ``<model>_predictions`` / ``_compression``."""
    return {"predictions": f"{model}_predictions", "compression": f"{model}_compression"}


def _teachers() -> Pipeline:
    chain = Pipeline(
        [
            Node(
                nodes.predict_teacher_ensembles,
                ["kd_targets", "test_samples", "params:distill", "params:task"],
                "predictions",
                name="predict_teacher_ensembles",
            ),
            Node(
                nodes.describe_teacher_ensembles,
                "teacher_sizes",
                "compression",
                name="describe_teacher_ensembles",
            ),
        ]
    )
    return Pipeline(
        chain,
        namespace=nodes.TEACHERS,
        inputs={"kd_targets", "test_samples", "teacher_sizes"},
        outputs=_chain_outputs(nodes.TEACHERS),
        parameters=PARAMETERS,
    )


def _evaluation(models: Sequence[str]) -> Pipeline:
    predictions = {m: _chain_outputs(m)["predictions"] for m in models}
    compression = {m: _chain_outputs(m)["compression"] for m in models}
    return Pipeline(
        [
            Node(
                nodes.collect_test_predictions,
                {
                    "test_samples": "test_samples",
                    "truth": "demo_truth_stays",
                    "task": "params:task",
                    **predictions,
                },
                "predictions",
                name="collect_test_predictions",
            ),
            Node(
                nodes.evaluate_test_predictions,
                ["predictions", "test_samples", "params:distill", "params:task"],
                ["evaluation", "differences", "reliability"],
                name="evaluate_test_predictions",
            ),
            Node(
                nodes.tabulate_comparison,
                {
                    "evaluation": "evaluation",
                    "differences": "differences",
                    "params": "params:distill",
                    **compression,
                },
                "comparison_table",
                name="tabulate_comparison",
            ),
            Node(
                nodes.render_comparison,
                ["comparison_table", "subgroup_evaluation", "params:distill", "params:task"],
                ["comparison_markdown", "comparison_report"],
                name="render_comparison",
            ),
            Node(
                nodes.plot_roc_pr,
                ["predictions", "test_samples", "evaluation", "params:task"],
                [f"roc_pr_{head}" for head in HEADS],
                name="plot_roc_pr",
            ),
            Node(
                nodes.plot_reliability,
                ["reliability", "params:task"],
                "reliability_plot",
                name="plot_reliability",
            ),
            Node(
                nodes.plot_comparison,
                ["comparison_table", "params:distill", "params:task"],
                "comparison_plot",
                name="plot_comparison",
            ),
            Node(
                nodes.evaluate_subgroups,
                ["predictions", "test_samples", "subgroups", "params:distill", "params:task"],
                "subgroup_evaluation",
                name="evaluate_subgroups",
            ),
            Node(
                nodes.plot_subgroups,
                ["subgroup_evaluation", "params:distill", "params:task"],
                "subgroups_plot",
                name="plot_subgroups",
            ),
            Node(
                nodes.track_evaluation_metrics,
                [
                    "evaluation",
                    "differences",
                    "comparison_table",
                    "subgroup_evaluation",
                    "params:distill",
                ],
                "metrics",
                name="track_evaluation_metrics",
            ),
        ],
        tags=["distill_evaluation"],
    )


def _modality_focus(task: str) -> Pipeline:
    """The MFH diagnostic (namespace ``<task>.distill.mfh``): γ̂ of every teacher -> head pair from
    the no-KD student's embeddings, then each verdict next to the measured gain of the head that
    distils from that teacher (MIND's or MCKD's). Made with full names inside its namespace, like
    ``_training_curves``: it reads a sibling namespace's (``no_kd``) datasets."""
    scope = f"{task}.distill"
    params = [f"params:{scope}", f"params:{task}.task"]
    return Pipeline(
        [
            Node(
                nodes.diagnose_modality_focus,
                [
                    f"{scope}.no_kd.weights",
                    f"{scope}.no_kd.spec",
                    f"{scope}.train_samples",
                    f"{scope}.val_samples",
                    f"{scope}.kd_targets",
                    f"{task}.timeseries",
                    "cxr_image_store",
                    params[0],
                ],
                f"{scope}.mfh.gammas",
                name="diagnose_modality_focus",
                namespace=f"{scope}.mfh",
            ),
            Node(
                nodes.judge_modality_focus,
                [
                    f"{scope}.mfh.gammas",
                    f"{scope}.differences",
                    f"{scope}.val_samples",
                    "demo_truth_stays",
                    *params,
                ],
                [f"{scope}.mfh.verdicts", f"{scope}.mfh.report", f"{scope}.mfh.metrics"],
                name="judge_modality_focus",
                namespace=f"{scope}.mfh",
            ),
        ],
        tags=["distill_evaluation"],
    )


def create_task_pipeline(
    variants: Sequence[str] = VARIANTS, members: Mapping[str, Sequence[str]] | None = None
) -> Pipeline:
    """One task's distill stage (un-namespaced): samples, every variant, teachers, evaluation.

    ``members``: the teacher ensemble the logit cache must hold, slots per modality (default
    ``mindkd.tasks.TEACHER_MEMBERS``, the slots the teachers pipeline trains).
    """
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "mind" not in variants:
        raise ValueError(f"variants must include 'mind' and come from {VARIANTS}, got {variants}")
    if members is None:
        members = TEACHER_MEMBERS
    return Pipeline(
        [
            samples_and_targets(members),
            *(_variant(v) for v in variants),
            _teachers(),
            _evaluation([*variants, nodes.TEACHERS]),
        ]
    )


def _training_curves(task: str, variants: Sequence[str]) -> Node:
    """Every variant's training curves in one figure (``<task>.distill.training_curves_plot``).

    It reads each variant chain's ``history`` (``<task>.distill.<variant>.history``), names of
    sibling namespaces, so the node is made inside its namespace: Kedro warns about a dotted
    dataset name in a node that is not.
    """
    scope = f"{task}.distill"
    return Node(
        nodes.plot_training_curves,
        {"task": f"params:{task}.task", **{v: f"{scope}.{v}.history" for v in variants}},
        f"{scope}.training_curves_plot",
        name="plot_training_curves",
        namespace=scope,
        tags=["distill_evaluation"],
    )


def _confusion(task: str) -> Node:
    """A multiclass task's confusion matrices (``<task>.distill.confusion_plot``); a binary or
    multilabel task has none (its curves and reliability say what a 2x2 table would)."""
    scope = f"{task}.distill"
    return Node(
        nodes.plot_confusion,
        [f"{scope}.predictions", f"{scope}.test_samples", f"params:{task}.task"],
        f"{scope}.confusion_plot",
        name="plot_confusion",
        namespace=scope,
        tags=["distill_evaluation"],
    )


def _multiclass(task: str) -> bool:
    try:
        return get_task(task).kind == "multiclass"
    except ValueError:  # a namespace that is not a task name: its kind is in its parameters
        return False


def create_pipeline(
    tasks: Sequence[str] = TASKS,
    variants: Sequence[str] = VARIANTS,
    members: Mapping[str, Sequence[str]] | None = None,
    **kwargs: object,
) -> Pipeline:
    """The distill stage of every task: namespaces ``<task>.distill`` and its variants; ``members``
    is the teacher ensemble each task's logit cache must hold (default tasks.TEACHER_MEMBERS)."""
    per_task = [
        Pipeline(
            [
                Pipeline(
                    Pipeline(
                        create_task_pipeline(variants, members),
                        namespace="distill",
                        inputs=TASK_INPUTS | SHARED,
                        parameters=PARAMETERS,
                    ),
                    namespace=task,
                    inputs=SHARED,
                ),
                _training_curves(task, variants),
                *([_confusion(task)] if _multiclass(task) else []),
                *([_modality_focus(task)] if "no_kd" in variants else []),
            ],
            tags=[task],
        )
        for task in tasks
    ]
    return Pipeline(per_task, tags=["distill"])
