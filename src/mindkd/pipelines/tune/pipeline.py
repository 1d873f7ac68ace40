"""The ``tune`` pipeline: every method of the comparison searched on val with the same budget.

``kedro run --pipelines tune`` rebuilds each task's distill samples (``<task>.distill``: the same
nodes as the distill pipeline) and then, per method in ``<task>.tune.spaces`` (namespace
``<task>.tune``), runs an Optuna study (``mindkd.training.tuning``): ``trials`` points of that
method's declared search space, each trained on train exactly as the distill pipeline trains it
and scored by the monitored val score of its kept epoch (``fit.monitor``, routed val AUROC). The
test split is never read. Every trial is an MLflow child run of the task's run.

Outputs per task: ``<task>.tune.<method>.trials`` (one row per trial), ``<task>.tune.report``
(markdown: the space, each method's best trial, the spread of its trials) and
``<task>.tune.tuned_parameters`` (YAML: each method's best values under their full keys, ready to
copy into ``conf/local/`` or ``conf/base/parameters_distill.yml``). Tuning never changes the config
by itself: a run of the distill pipeline uses what the config says.

Parameters (``<task>.tune``, ``TuneParams``): the study settings (``trials``, ``seed``, pruner) and
``spaces.<method>``: dotted keys of ``<task>.distill`` with a ``Distribution`` each. A method may
search only its own keys: MIND the top-level loss, ``combine``, ``routing``, ``fit.*`` and
``student.*``; a baseline ``baselines.<method>.*``. ``fit.seed`` is never searched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kedro.pipeline import Node, Pipeline

from mindkd.pipelines.distill import pipeline as distill
from mindkd.tasks import TASKS, TEACHER_MEMBERS
from mindkd.training.spec import TUNED

from .nodes import summarise_study, tune_method


def _study_node(task: str, method: str, members: Mapping[str, Sequence[str]]) -> Node:
    """``<task>.tune.tune_<method>``; made inside its namespace with full dataset names, as the
    datasets it reads are the sibling ``<task>.distill`` namespace's."""
    scope = f"{task}.distill"
    return Node(
        tune_method(method, members),
        {
            "params": f"params:{scope}",
            "tune": f"params:{task}.tune",
            "task": f"params:{task}.task",
            "teacher_sizes": f"{scope}.teacher_sizes",
            "image_normaliser": f"{scope}.image_normaliser",
            "train_samples": f"{scope}.train_samples",
            "val_samples": f"{scope}.val_samples",
            "input_fingerprint": f"{scope}.input_fingerprint",
            "teacher_logits": f"{task}.teacher_logits",
            "timeseries": f"{task}.timeseries",
            "image_store": "cxr_image_store",
        },
        f"{task}.tune.{method}.trials",
        name=f"tune_{method}",
        namespace=f"{task}.tune",
    )


def create_task_pipeline(
    task: str, methods: Sequence[str] = TUNED, members: Mapping[str, Sequence[str]] | None = None
) -> Pipeline:
    """One task's tune stage: the distill samples (``<task>.distill``), one study per method and
    the summary (``<task>.tune``)."""
    members = TEACHER_MEMBERS if members is None else members
    nodes = distill.samples_and_targets(members)  # the distill pipeline's own nodes
    samples = Pipeline(
        Pipeline(
            nodes,
            namespace="distill",
            inputs={name for name in nodes.inputs() if not name.startswith("params:")},
            parameters=distill.PARAMETERS,
        ),
        namespace=task,
        inputs={"cxr_image_store"},
    )
    studies = [_study_node(task, m, members) for m in methods]
    summary = Node(
        summarise_study,
        {
            "tune": f"params:{task}.tune",
            "task": f"params:{task}.task",
            **{m: f"{task}.tune.{m}.trials" for m in methods},
        },
        [f"{task}.tune.tuned_parameters", f"{task}.tune.report", f"{task}.tune.metrics"],
        name="summarise_study",
        namespace=f"{task}.tune",
    )
    return Pipeline([samples, *studies, summary], tags=[task])


def create_pipeline(
    tasks: Sequence[str] = TASKS,
    methods: Sequence[str] = TUNED,
    members: Mapping[str, Sequence[str]] | None = None,
) -> Pipeline:
    """``kedro run --pipelines tune``: every task's studies (namespace ``<task>.tune``)."""
    return Pipeline([create_task_pipeline(t, methods, members) for t in tasks], tags=["tune"])
