"""The best MIND student of a task in the MLflow model registry: ``mindkd-<task>-student@champion``.

``register_best`` looks at the finished runs of the task's experiment (``mindkd-<task>``) and of the
base experiment (``mindkd``, where runs of both tasks lived before runs were split per task) that
carry the completion mark ``mindkd.evaluation_complete`` (set once the task's test evaluation was
logged: a run interrupted before it, or recorded FINISHED by an older version, is never a
candidate), ranks
them by a VALIDATION metric of the MIND student (default ``<task>.distill.mind.best/val/auroc``:
the monitored val metric at the epoch whose weights were kept; test metrics never select a model),
and registers the best run's pyfunc student (the logged model tagged ``mindkd.serving`` /
``mindkd.task`` by ``mindkd.serving.dataset.StudentModelDataset``) as a version of
``mindkd-<task>-student`` with the alias ``champion``. Running it again registers nothing new while
the best run stays the same. Then, anywhere::

    mlflow.pyfunc.load_model("models:/mindkd-ihm-student@champion").predict(stays)

(input format: ``mindkd.serving.pyfunc``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from mlflow import MlflowClient
from mlflow.entities import LoggedModel, LoggedModelStatus, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mindkd.tracking.runs import TAG_EVALUATED

logger = logging.getLogger(__name__)

BASE_EXPERIMENT = "mindkd"
DEFAULT_METRIC = "best/val/auroc"
ALIAS = "champion"
# Tags of the logged pyfunc student (written by mindkd.serving.dataset.StudentModelDataset).
SERVING_TAG = ("mindkd.serving", "student_pyfunc")
TASK_TAG = "mindkd.task"
MODEL_ID_TAG = "mindkd.model_id"  # on a registered version: the logged model it is
VALIDATION_PREFIXES = ("val/", "best/val/")
HIGHER_IS_BETTER = ("auroc", "auprc")  # other val metrics are losses: lower is better


class RegistryError(RuntimeError):
    """No run can be registered (no experiment, no finished run with the metric and a model)."""


@dataclass(frozen=True)
class Candidate:
    """A finished distill run, its value of the selection metric and its pyfunc student."""

    run_id: str
    experiment: str
    metric: str
    value: float
    model_id: str
    model_uri: str  # models:/<model_id>
    artifact_location: str  # where the model's files are


def model_name(task: str) -> str:
    """The registered model of a task: ``mindkd-ihm-student``."""
    return f"mindkd-{task}-student"


def metric_key(task: str, metric: str = DEFAULT_METRIC) -> str:
    """The MLflow metric ``<task>.distill.mind.<metric>``; ``metric`` must be a validation one."""
    if not metric.startswith(VALIDATION_PREFIXES):
        raise ValueError(
            f"metric {metric!r} is not a validation metric of the MIND student: choose one logged "
            f"as <task>.distill.mind.<metric> with <metric> starting with {VALIDATION_PREFIXES} "
            f"(default {DEFAULT_METRIC!r}); test-split metrics report a model, they never select it"
        )
    return f"{task}.distill.mind.{metric}"


def metric_mode(metric: str) -> Literal["max", "min"]:
    """``max`` for AUROC / AUPRC (``val/auroc``, ``best/val/auprc``), ``min`` for the losses."""
    return "max" if metric.rsplit("/", 1)[-1].startswith(HIGHER_IS_BETTER) else "min"


def find_best(
    task: str,
    tracking_uri: str | None = None,
    metric: str = DEFAULT_METRIC,
    *,
    experiment: str = BASE_EXPERIMENT,
) -> Candidate:
    """The finished run with the best ``metric`` that logged a pyfunc student of ``task``.

    Best = highest AUROC / AUPRC, lowest loss (``metric_mode``); ties go to the most recent run.
    Runs with the metric but no pyfunc student (e.g. from before the student was logged that way)
    are skipped with a log line.
    """
    client = _client(tracking_uri)
    key = metric_key(task, metric)
    experiments = _experiments(client, task, experiment)
    for run in _ranked_runs(client, list(experiments), key, metric_mode(metric)):
        model = _student_model(client, run, task)
        if model is None:
            logger.info("run %s has %s but no pyfunc student of %s", run.info.run_id, key, task)
            continue
        return Candidate(
            run_id=run.info.run_id,
            experiment=experiments[run.info.experiment_id],
            metric=key,
            value=float(run.data.metrics[key]),
            model_id=model.model_id,
            model_uri=model.model_uri,
            artifact_location=model.artifact_location,
        )
    without = _finished_without(client, list(experiments), key, task)
    if without:
        raise RegistryError(
            f"{len(without)} finished run(s) of {task!r} logged a student but no {key!r} (e.g. "
            f"run {without[0]}): they monitored another metric, or this one was never finite "
            "(e.g. a val split whose labels have a single class, as in a small cohort). Rank "
            "them by a validation metric they logged, e.g. "
            "`--metric best/val/loss` with `monitor: val/loss` in the task's fit settings, or "
            "`--metric val/loss` (the last epoch's)"
        )
    raise RegistryError(
        f"no finished run in experiment(s) {sorted(experiments.values())} has a completed "
        f"evaluation (tag {TAG_EVALUATED}), the metric {key!r} and a pyfunc student of {task!r}: "
        "run `kedro run --pipelines distill` to the end first"
    )


def register_best(
    task: str,
    tracking_uri: str | None = None,
    metric: str = DEFAULT_METRIC,
    *,
    experiment: str = BASE_EXPERIMENT,
) -> ModelVersion:
    """Register the best run's student of ``task`` as ``mindkd-<task>-student@champion``.

    ``tracking_uri``: the MLflow store (also the registry); None = MLflow's default
    (``MLFLOW_TRACKING_URI``). ``metric``: the validation metric under
    ``<task>.distill.mind.`` that ranks the runs (AUROC / AUPRC: higher is better; a loss such
    as ``best/val/loss``: lower). ``experiment``: the base
    experiment name of ``mlflow.yml`` (runs are searched in ``<experiment>-<task>`` and
    ``<experiment>``). Idempotent: the version of an already registered run is reused; the alias
    moves only when a better run appears. Returns the model version that holds the alias.
    """
    best = find_best(task, tracking_uri, metric, experiment=experiment)
    client = _client(tracking_uri)
    name = model_name(task)
    _ensure_registered_model(client, name, task)
    # The source is the model's artifact location, not models:/<id>: MLflow's sqlite registry
    # resolves a models:/ source through the *global* tracking URI, not this client's (and does
    # not keep the model id), so the logged model's id goes into a tag.
    version = _existing_version(client, name, best) or client.create_model_version(
        name,
        source=best.artifact_location,
        run_id=best.run_id,
        model_id=best.model_id,
        tags={
            TASK_TAG: task,
            MODEL_ID_TAG: best.model_id,
            "selected_by": best.metric,
            "selected_value": best.value,
        },
        description=f"MIND student of {task} (logged model {best.model_id}): "
        f"{best.metric} = {best.value:.4f}",
    )
    client.set_registered_model_alias(name, ALIAS, version.version)
    logger.info(
        "%s version %s (run %s, %s = %.4f) is %r",
        name,
        version.version,
        best.run_id,
        best.metric,
        best.value,
        ALIAS,
    )
    return client.get_model_version_by_alias(name, ALIAS)


# ------------------------------------------------------------------------------------- helpers
def _client(tracking_uri: str | None) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiments(client: MlflowClient, task: str, base: str) -> dict[str, str]:
    """Experiment id -> name of ``<base>-<task>`` and ``<base>`` that exist."""
    found = {}
    for name in (f"{base}-{task}", base):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            found[experiment.experiment_id] = name
    if not found:
        raise RegistryError(
            f"no MLflow experiment {base}-{task} or {base} in {client.tracking_uri}: point "
            "tracking_uri at the project's store (mlflow.yml, sqlite:///mlflow.db)"
        )
    return found


def _ranked_runs(
    client: MlflowClient, experiment_ids: list[str], key: str, mode: str
) -> Iterator[Run]:
    """Finished runs that logged ``key``, best first (then newest first)."""
    order = "DESC" if mode == "max" else "ASC"
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=f"attributes.status = 'FINISHED' AND tags.`{TAG_EVALUATED}` = 'true'",
            order_by=[f"metrics.`{key}` {order}", "attributes.start_time DESC"],
            max_results=500,
            page_token=token,
        )
        for run in page:
            if key in run.data.metrics:
                yield run
        token = page.token
        if not token:
            return


def _finished_without(
    client: MlflowClient, experiment_ids: list[str], key: str, task: str
) -> list[str]:
    """Ids of finished runs with a pyfunc student of ``task`` that lack the metric ``key``."""
    runs = client.search_runs(
        experiment_ids,
        filter_string=f"attributes.status = 'FINISHED' AND tags.`{TAG_EVALUATED}` = 'true'",
        max_results=200,
    )
    return [
        run.info.run_id
        for run in runs
        if key not in run.data.metrics and _student_model(client, run, task) is not None
    ]


def _student_model(client: MlflowClient, run: Run, task: str) -> LoggedModel | None:
    """The run's pyfunc student of ``task`` (the last one logged), if any."""
    tag, value = SERVING_TAG
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=(
            f"source_run_id = '{run.info.run_id}' AND tags.`{tag}` = '{value}' "
            f"AND tags.`{TASK_TAG}` = '{task}'"
        ),
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
    )
    ready = [m for m in models if m.status == LoggedModelStatus.READY]
    return ready[0] if ready else None


def _ensure_registered_model(client: MlflowClient, name: str, task: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={TASK_TAG: task},
            description=(
                f"MIND student of {task}. Input: one row per stay (timeseries, optional image); "
                "output: probability per label and the head that served the stay. Alias "
                f"{ALIAS!r}: the best finished run by a validation metric."
            ),
        )


def _existing_version(client: MlflowClient, name: str, best: Candidate) -> ModelVersion | None:
    for version in client.search_model_versions(f"name = '{name}'"):
        if (
            version.tags.get(MODEL_ID_TAG) == best.model_id
            or version.source == best.artifact_location
        ):
            return version
    return None
