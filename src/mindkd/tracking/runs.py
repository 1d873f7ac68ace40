"""How MIND-KD's MLflow runs are organised: experiments, run names, tag keys.

One experiment per task (``<base>-ihm``, ``<base>-pheno``; ``<base>`` is the experiment name of
``mlflow.yml``, ``mindkd``). A session that touches one task makes one run in that task's
experiment; one that touches several makes a *chain* run in ``<base>`` (the shared data stages)
plus one run per task, linked by tags (``mindkd.chain_run_id``, ``mindkd.session_id``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kedro.pipeline import Node, Pipeline

# Tag keys (every run carries the provenance tags; see mindkd.hooks.TrackingHook).
TAG_SESSION = "mindkd.session_id"
TAG_TASK = "mindkd.task"
TAG_STAGES = "mindkd.stages"
TAG_CHAIN_RUN = "mindkd.chain_run_id"
TAG_TASK_RUN = "mindkd.task_run."  # + task, on the chain run
TAG_GIT_COMMIT = "mindkd.git_commit"
TAG_GIT_DIRTY = "mindkd.git_dirty"
TAG_DATA = "mindkd.data_fingerprint"
TAG_DATA_FILES = "mindkd.data_files"
TAG_LOGIT_CACHE = "mindkd.logit_cache_version"  # the teacher logit cache a distill run read
TAG_LOGIT_CACHE_WRITTEN = "mindkd.logit_cache_written"  # the one a teachers run wrote
TAG_VERSION = "mindkd.version."  # + package
TAG_PID = "mindkd.pid"  # the process that ran it (with TAG_HOST: stale RUNNING runs are found)
TAG_HOST = "mindkd.host"
TAG_EVALUATED = "mindkd.evaluation_complete"  # "true" once the task's test evaluation is logged
EVALUATION_NODE = "distill.track_evaluation_metrics"  # <task>.distill.track_evaluation_metrics
TAG_COMMAND = "kedro_command"  # kedro-mlflow's tag, rewritten with every option and --params

# The stages in the order data flows through them; others (a new pipeline) follow by name.
STAGE_ORDER = ("ehr", "cxr", "pairing", "teachers", "distill")


def task_experiment(base: str, task: str) -> str:
    """The experiment of one task: ``mindkd-ihm``."""
    return f"{base}-{task}"


def node_task(node: Node, tasks: Iterable[str]) -> str | None:
    """The task a node belongs to (its top-level namespace), or None for a shared-stage node."""
    top = node.namespace.split(".")[0] if node.namespace else None
    return top if top in set(tasks) else None


def pipeline_tasks(pipeline: Pipeline, tasks: Iterable[str]) -> list[str]:
    """The tasks whose nodes ``pipeline`` runs, in the order of ``tasks``."""
    known = list(tasks)
    present = {node_task(node, known) for node in pipeline.nodes}
    return [task for task in known if task in present]


def pipeline_stages(
    pipeline: Pipeline,
    stages: Mapping[str, Pipeline],
    task: str | None = None,
    tasks: Iterable[str] = (),
) -> list[str]:
    """The registered stages (``ehr``, ``distill``...) with a node in ``pipeline``, in flow order.

    With ``task``, only the stages with a node of that task. ``__default__`` is not a stage.
    """
    known = list(tasks)
    names = {node.name for node in pipeline.nodes if task is None or node_task(node, known) == task}
    found = [
        stage
        for stage, stage_pipeline in stages.items()
        if stage != "__default__" and names & {node.name for node in stage_pipeline.nodes}
    ]
    return sorted(found, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else 99, s))


def chain_run_name(stages: Sequence[str]) -> str:
    """``chain (ehr+cxr+pairing+teachers+distill)``."""
    return f"chain ({'+'.join(stages)})"


def task_run_name(stages: Sequence[str], task: str | None, params: Mapping[str, Any]) -> str:
    """``distill ihm · concat · α=0.5 · seed 0``, ``teachers ihm``, ``cxr``.

    The distill settings (student fusion, alpha, seed) are added when the run trains students;
    ``params`` is the whole (plain) parameter tree.
    """
    head = " ".join(part for part in ("+".join(stages), task) if part)
    if task is None or "distill" not in stages:
        return head
    distill = _get(params, task, "distill")
    if not isinstance(distill, Mapping):
        return head
    settings = [
        _get(distill, "student", "fusion"),
        _labelled("α=", distill.get("alpha")),
        _labelled("seed ", _get(distill, "fit", "seed")),
    ]
    return " · ".join([head, *(str(s) for s in settings if s is not None)])


def _labelled(label: str, value: Any) -> str | None:
    if value is None:
        return None
    return f"{label}{value:g}" if isinstance(value, float) else f"{label}{value}"


def _get(tree: Mapping[str, Any], *keys: str) -> Any:
    value: Any = tree
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def flatten_params(
    params: Mapping[str, Any], sep: str = ".", recursive: bool = True
) -> dict[str, Any]:
    """Nested parameters as one level of ``<key><sep><sub key>`` (kedro-mlflow's ``flatten_dict_params``).

    >>> flatten_params({"distill": {"alpha": 0.5, "fit": {"seed": 0}}, "split": 1})
    {'distill.alpha': 0.5, 'distill.fit.seed': 0, 'split': 1}
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            inner = flatten_params(value, sep, recursive) if recursive else value
            flat.update({f"{key}{sep}{k}": v for k, v in inner.items()})
        else:
            flat[str(key)] = value
    return flat


def tracking_enabled(pipeline_names: Iterable[str], disabled: Iterable[str]) -> bool:
    """Whether kedro-mlflow tracks a session of ``pipeline_names``: not all of them are in its
    ``disable_tracking.pipelines``."""
    off = set(disabled)
    return not all(name in off for name in pipeline_names)
