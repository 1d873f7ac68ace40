"""Wiring of the ``teachers`` pipeline: one member pipeline per slot, one task pipeline per namespace.

Namespaces: ``<task>.teacher_<slot>`` for each member slot of ``mindkd.tasks.TEACHER_MEMBERS`` (their
hyper-parameters are ``<task>.teachers.<modality>.members.<slot>``), under the task namespaces
``ihm`` and ``pheno``. ``kedro run --pipelines teachers --namespaces ihm`` runs one task; every node
also carries the task's tag and ``teachers_ehr`` / ``teachers_cxr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kedro.pipeline import Node, Pipeline

from mindkd.tasks import TASKS, TEACHER_MEMBERS
from mindkd.training.samples import fingerprint_inputs

from . import nodes

SHARED = {"cxr_image_store", "cxr_image_labels", "subject_splits"}
TASK_INPUTS = {"cohort", "timeseries", "pairs", "cxr_only"}
_RESERVED = {"fingerprint", "task"}  # keyword names of assemble_logit_cache


def _ehr_member() -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train_ehr_teacher,
                ["cohort", "timeseries", "params:member", "params:fit", "params:task"],
                ["weights", "history"],
                name="train_ehr_teacher",
            ),
            Node(nodes.track_training_curves, "history", "curves", name="track_training_curves"),
            Node(
                nodes.predict_ehr_logits,
                ["weights", "cohort", "timeseries", "params:member", "params:cache", "params:task"],
                "member_logits",
                name="predict_ehr_logits",
            ),
        ]
    )


def _cxr_member() -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.pretrain_cxr_teacher,
                [
                    "cxr_image_labels",
                    "subject_splits",
                    "cxr_image_store",
                    "params:member",
                    "params:pretrain",
                ],
                ["pretrained_weights", "pretrain_history"],
                name="pretrain_cxr_teacher",
            ),
            Node(
                nodes.finetune_cxr_teacher,
                [
                    "pretrained_weights",
                    "pairs",
                    "cohort",
                    "cxr_image_store",
                    "params:member",
                    "params:fit",
                    "params:task",
                ],
                ["weights", "history"],
                name="finetune_cxr_teacher",
            ),
            Node(
                nodes.track_training_curves,
                ["history", "pretrain_history"],
                "curves",
                name="track_training_curves",
            ),
            Node(
                nodes.predict_cxr_logits,
                [
                    "weights",
                    "pairs",
                    "cxr_only",
                    "cxr_image_store",
                    "params:member",
                    "params:cache",
                    "params:task",
                ],
                "member_logits",
                name="predict_cxr_logits",
            ),
        ]
    )


def _member(modality: str, slot: str) -> Pipeline:
    template = _ehr_member() if modality == "ehr" else _cxr_member()
    parameters = {
        "params:member": f"params:teachers.{modality}.members.{slot}",
        "params:fit": f"params:teachers.{modality}.fit",
        "params:cache": "params:teachers.cache",
        "params:task": "params:task",
    }
    if modality == "cxr":
        parameters["params:pretrain"] = "params:teachers.cxr.pretrain"
    return Pipeline(
        template,
        namespace=f"teacher_{slot}",
        inputs=(TASK_INPUTS | SHARED) & set(template.inputs()),
        outputs={"member_logits": f"teacher_{slot}_logits"},
        parameters=parameters,
        tags=[f"teachers_{modality}"],
    )


def _task(members: Mapping[str, Sequence[str]]) -> Pipeline:
    slots = [slot for modality in ("ehr", "cxr") for slot in members.get(modality, ())]
    per_member = [_member(m, slot) for m in ("ehr", "cxr") for slot in members.get(m, ())]
    cache_inputs = {
        "fingerprint": "teacher_input_fingerprint",
        "task": "params:task",
        **{slot: f"teacher_{slot}_logits" for slot in slots},
    }
    task_nodes = Pipeline(
        [
            Node(
                fingerprint_inputs,
                ["cohort", "timeseries", "pairs", "cxr_only", "cxr_image_store"],
                "teacher_input_fingerprint",
                name="fingerprint_teacher_inputs",
            ),
            Node(
                nodes.assemble_logit_cache,
                cache_inputs,
                "teacher_logits",
                name="assemble_logit_cache",
            ),
            Node(
                nodes.evaluate_teachers,
                ["teacher_logits", "cohort", "pairs", "params:task", "params:teachers.report"],
                "teacher_report",
                name="evaluate_teachers",
            ),
            Node(
                nodes.tabulate_teacher_report,
                "teacher_report",
                "teacher_report_table",
                name="tabulate_teacher_report",
            ),
            Node(
                nodes.track_teacher_metrics,
                "teacher_report",
                "teacher_metrics",
                name="track_teacher_metrics",
            ),
        ]
    )
    return Pipeline([*per_member, task_nodes])


def _training_curves(task: str, members: Mapping[str, Sequence[str]]) -> Node:
    """Every member's training curves in one figure (``<task>.teacher_training_curves_plot``).

    Inputs: each slot's ``history`` and, for CXR slots, its ``pretrain_history`` (keyword
    ``<slot>__pretrain``). They live in the member namespaces (``<task>.teacher_<slot>.history``),
    so the node is made inside the task's namespace: Kedro warns about a dotted dataset name in a
    node that is not.
    """
    histories = {}
    for modality in ("ehr", "cxr"):
        for slot in members.get(modality, ()):
            histories[slot] = f"{task}.teacher_{slot}.history"
            if modality == "cxr":
                key = f"{slot}{nodes.PRETRAIN_SUFFIX}"
                histories[key] = f"{task}.teacher_{slot}.pretrain_history"
    return Node(
        nodes.plot_teacher_training_curves,
        {"task": f"params:{task}.task", **histories},
        f"{task}.teacher_training_curves_plot",
        name="plot_teacher_training_curves",
        namespace=task,
    )


def _check_slots(members: Mapping[str, Sequence[str]]) -> None:
    unknown = sorted(set(members) - {"ehr", "cxr"})
    slots = [slot for modality in ("ehr", "cxr") for slot in members.get(modality, ())]
    problems = [f"unknown modality {m!r}" for m in unknown]
    problems += [f"slot {s!r} is not a Python identifier" for s in slots if not s.isidentifier()]
    problems += [f"slot {s!r} is reserved" for s in slots if s in _RESERVED]
    suffix = nodes.PRETRAIN_SUFFIX  # marks pre-training histories among the curves node's inputs
    problems += [
        f"slot {s!r} ends with the reserved {suffix!r}" for s in slots if s.endswith(suffix)
    ]
    problems += [f"slot {s!r} appears twice" for s in set(slots) if slots.count(s) > 1]
    if not members.get("ehr") or not members.get("cxr"):
        problems.append("each modality (ehr, cxr) needs at least one member slot")
    if problems:
        raise ValueError("tasks.TEACHER_MEMBERS: " + "; ".join(problems))


def create_pipeline(
    members: Mapping[str, Sequence[str]] | None = None,
    tasks: Sequence[str] = TASKS,
    **kwargs: object,
) -> Pipeline:
    """The teachers of every task; ``members`` defaults to ``mindkd.tasks.TEACHER_MEMBERS``."""
    if members is None:
        members = TEACHER_MEMBERS
    _check_slots(members)
    per_task = [
        Pipeline(
            [
                Pipeline(_task(members), namespace=task, inputs=SHARED),
                _training_curves(task, members),
            ],
            tags=[task],
        )
        for task in tasks
    ]
    return Pipeline(per_task, tags=["teachers"])
