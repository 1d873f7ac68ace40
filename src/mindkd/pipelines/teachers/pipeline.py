"""Wiring of the ``teachers`` pipeline: one member pipeline per slot, one task pipeline per namespace.

Namespaces: ``cxr_pretrain.<slot>`` for the CheXpert pre-training of each CXR slot, once for every
task (parameters ``cxr_pretrain``); ``<task>.teacher_<slot>`` for each member slot of
``mindkd.tasks.TEACHER_MEMBERS`` (their hyper-parameters are
``<task>.teachers.<modality>.members.<slot>``), under the task namespaces ``ihm``, ``pheno`` and
``los``. ``kedro run --pipelines teachers --namespaces ihm`` runs one task from the saved
pre-trained weights (add ``cxr_pretrain`` to pre-train them too); every node
also carries the task's tag and ``teachers_ehr`` / ``teachers_cxr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kedro.pipeline import Node, Pipeline

from mindkd.tasks import TASKS, TEACHER_MEMBERS
from mindkd.training.samples import fingerprint_inputs

from . import nodes

SHARED = {"cxr_image_store", "cxr_image_labels", "subject_splits"}
PRETRAIN = "cxr_pretrain"  # the namespace (and parameter key) of the shared CXR pre-training
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


def _cxr_member(pretrained: bool) -> Pipeline:
    start = (
        []
        if pretrained  # `pretrained_weights` / `pretrain_history` come from cxr_pretrain.<slot>
        else [
            Node(
                nodes.initial_cxr_teacher,
                ["params:member", "params:fit"],
                ["pretrained_weights", "pretrain_history"],
                name="initial_cxr_teacher",
            )
        ]
    )
    return Pipeline(
        [
            *start,
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


def pretrained(slot: str) -> dict[str, str]:
    """The shared pre-training outputs of CXR slot ``slot``: ``cxr_pretrained_<slot>`` and
    ``cxr_pretrain_history_<slot>``, top-level names like ``cxr_image_store`` (every task reads
    them)."""
    return {
        "pretrained_weights": f"cxr_pretrained_{slot}",
        "pretrain_history": f"cxr_pretrain_history_{slot}",
    }


def _pretrain(slot: str) -> Pipeline:
    """CheXpert pre-training of one CXR slot, once for every task (namespace ``cxr_pretrain.<slot>``).

    It reads no task label, so each task's member of the slot fine-tunes from the same weights."""
    template = Pipeline(
        [
            Node(
                nodes.pretrain_cxr_teacher,
                [
                    "cxr_image_labels",
                    "subject_splits",
                    "cxr_image_store",
                    "params:member",
                    "params:fit",
                    "params:recipe",
                ],
                ["weights", "history"],
                name="pretrain_cxr_teacher",
            )
        ]
    )
    return Pipeline(
        template,
        namespace=f"{PRETRAIN}.{slot}",
        inputs=SHARED,
        outputs={
            "weights": pretrained(slot)["pretrained_weights"],
            "history": pretrained(slot)["pretrain_history"],
        },
        parameters={
            "params:member": f"params:{PRETRAIN}.members.{slot}",
            "params:fit": f"params:{PRETRAIN}.fit",
            "params:recipe": f"params:{PRETRAIN}.recipe",
        },
        tags=["teachers_cxr", PRETRAIN],
    )


def _member(modality: str, slot: str, shared_pretraining: bool = True) -> Pipeline:
    template = _ehr_member() if modality == "ehr" else _cxr_member(shared_pretraining)
    parameters = {
        "params:member": f"params:teachers.{modality}.members.{slot}",
        "params:fit": f"params:teachers.{modality}.fit",
        "params:cache": "params:teachers.cache",
        "params:task": "params:task",
    }
    inputs: dict[str, str] = {
        name: name for name in (TASK_INPUTS | SHARED) & set(template.inputs())
    }
    if modality == "cxr" and shared_pretraining:
        inputs |= pretrained(slot)
    return Pipeline(
        template,
        namespace=f"teacher_{slot}",
        inputs=inputs,
        outputs={"member_logits": f"teacher_{slot}_logits"},
        parameters=parameters,
        tags=[f"teachers_{modality}"],
    )


def _task(members: Mapping[str, Sequence[str]], shared_pretraining: bool = True) -> Pipeline:
    slots = [slot for modality in ("ehr", "cxr") for slot in members.get(modality, ())]
    per_member = [
        _member(m, slot, shared_pretraining) for m in ("ehr", "cxr") for slot in members.get(m, ())
    ]
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


def _training_curves(
    task: str, members: Mapping[str, Sequence[str]], shared_pretraining: bool = True
) -> Node:
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
                histories[key] = (
                    pretrained(slot)["pretrain_history"]
                    if shared_pretraining
                    else f"{task}.teacher_{slot}.pretrain_history"
                )
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
    shared_pretraining: bool = True,
    **kwargs: object,
) -> Pipeline:
    """The teachers of every task; ``members`` defaults to ``mindkd.tasks.TEACHER_MEMBERS``.

    ``shared_pretraining``: CXR members fine-tune from the ``cxr_pretrain`` stage (CheXpert
    pre-training of each slot, once for all ``tasks``); False: from their seeded initial weights
    (a source without CheXpert labels, e.g. AV-digits), with no pre-training node."""
    if members is None:
        members = TEACHER_MEMBERS
    _check_slots(members)
    shared = [_pretrain(slot) for slot in members.get("cxr", ())] if shared_pretraining else []
    per_task = [
        Pipeline(
            [
                _namespaced(_task(members, shared_pretraining), task, members, shared_pretraining),
                _training_curves(task, members, shared_pretraining),
            ],
            tags=[task],
        )
        for task in tasks
    ]
    return Pipeline([*shared, *per_task], tags=["teachers"])


def _namespaced(
    template: Pipeline, task: str, members: Mapping[str, Sequence[str]], shared_pretraining: bool
) -> Pipeline:
    """One task's teachers in namespace ``task``, the shared inputs (and pre-training) outside it."""
    shared = set(SHARED)
    if shared_pretraining:
        shared |= {name for slot in members.get("cxr", ()) for name in pretrained(slot).values()}
    return Pipeline(template, namespace=task, inputs=shared & set(template.inputs()))
