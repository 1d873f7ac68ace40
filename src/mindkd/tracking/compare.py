"""Distill runs side by side, and what differs between two runs, read from the MLflow store.

``compare_runs`` returns one row per distill run (the latest first): its key settings (from the
flattened params ``<task>.distill.*``) and, per model, the routed head's test AUROC / AUPRC with their
bootstrap intervals on the paired and full test subsets (metrics
``<task>.distill.<model>.<subset>.routed.<metric>[_low|_high]``). Column names drop the task prefix,
so runs of both tasks share one table. ``diff_runs`` lists the params (and provenance tags) of two
runs that differ. ``format_*`` turn both into text for ``python -m mindkd.tracking``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run

from mindkd.tracking import runs as names

TASKS = ("ihm", "pheno", "los", "avdigits")  # mindkd.tasks: TASKS and AVDIGITS (a test checks)
SUBSETS = ("paired", "full")
METRICS = ("auroc", "auprc")
HEAD = "routed"
# Key settings: column -> param name under `<task>.`
SETTINGS = {
    "alpha": "distill.alpha",
    "temperature": "distill.temperature",
    "distance": "distill.distance",
    "fusion": "distill.student.fusion",
    "data": "distill.data",
    "seed": "distill.fit.seed",
}
NUMERIC_SETTINGS = ("alpha", "temperature", "seed")
HEADERS = {"alpha": "α", "temperature": "T"}  # of the text table
PROVENANCE_TAGS = (
    names.TAG_GIT_COMMIT,
    names.TAG_GIT_DIRTY,
    names.TAG_DATA,
    names.TAG_LOGIT_CACHE,
    names.TAG_COMMAND,
)
DEFAULT_SORT = "paired.routed.auroc"
RUN_ID_LENGTH = 32


class CompareError(ValueError):
    """A comparison that cannot be made (unknown run, metric or task); the message says why."""


def score_columns(models: Iterable[str], head: str = HEAD) -> list[str]:
    """``mind.paired.routed.auroc`` etc. (value, then ``_low`` / ``_high``) for each model."""
    return [
        f"{model}.{subset}.{head}.{metric}{part}"
        for model in models
        for subset in SUBSETS
        for metric in METRICS
        for part in ("", "_low", "_high")
    ]


def compare_runs(
    tracking_uri: str,
    *,
    base_experiment: str = "mindkd",
    tasks: Sequence[str] = TASKS,
    models: Sequence[str] = ("mind",),
    sort: str | None = DEFAULT_SORT,
    limit: int = 20,
    ascending: bool = False,
) -> pd.DataFrame:
    """The ``limit`` latest FINISHED distill runs of each task, sorted by ``sort``.

    ``sort`` is a score column without the model (``paired.routed.auroc``: the first model's, i.e.
    MIND's), a full score column (``no_kd.full.routed.auprc``), a setting (``alpha``) or None (newest
    first). A distill run is a run of ``<base>-<task>`` (or of ``<base>``, where runs lived before
    they were split per task) that logged MIND's full-test AUROC of the task.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = [_task_runs(client, base_experiment, task, models, limit) for task in tasks]
    frames = [frame for frame in found if not frame.empty]
    table = pd.concat(frames, ignore_index=True) if frames else _empty(models)
    table = table.sort_values("start_time", ascending=False, kind="stable")
    if sort:
        column = _sort_column(sort, models, table.columns)
        table = table.sort_values(column, ascending=ascending, kind="stable", na_position="last")
    return table.reset_index(drop=True)


def _task_runs(
    client: mlflow.MlflowClient, base: str, task: str, models: Sequence[str], limit: int
) -> pd.DataFrame:
    # The task's experiment, and the base one: runs made before runs were split per task held
    # every task's metrics there (a chain run of today holds no distill metric).
    experiments = [
        client.get_experiment_by_name(n) for n in (names.task_experiment(base, task), base)
    ]
    ids = [e.experiment_id for e in experiments if e is not None]
    if not ids:
        return _empty(models)
    marker = f"{task}.distill.mind.full.{HEAD}.auroc"
    found = client.search_runs(
        ids,
        filter_string=f"attributes.status = 'FINISHED' and metrics.`{marker}` >= 0",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    return pd.DataFrame([_row(run, task, models) for run in found], columns=_columns(models))


def _row(run: Run, task: str, models: Sequence[str]) -> dict[str, Any]:
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "task": task,
        "start_time": pd.Timestamp(run.info.start_time, unit="ms"),
    }
    for column, param in SETTINGS.items():
        value = params.get(f"{task}.{param}")
        row[column] = _number(value) if column in NUMERIC_SETTINGS else value
    for column in score_columns(models):
        row[column] = metrics.get(f"{task}.distill.{column}")
    row["logit_cache"] = tags.get(names.TAG_LOGIT_CACHE)
    row["git_commit"] = (tags.get(names.TAG_GIT_COMMIT) or "")[:8] or None
    return row


def _columns(models: Sequence[str]) -> list[str]:
    return [
        "run_id",
        "run_name",
        "task",
        "start_time",
        *SETTINGS,
        *score_columns(models),
        "logit_cache",
        "git_commit",
    ]


def _empty(models: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=_columns(models))


def _number(value: str | None) -> float | int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in value else number


def _sort_column(sort: str, models: Sequence[str], columns: Iterable[str]) -> str:
    available = list(columns)
    for candidate in (sort, f"{models[0]}.{sort}"):
        if candidate in available:
            return candidate
    raise CompareError(
        f"cannot sort by {sort!r}: use a setting ({', '.join(SETTINGS)}) or a score such as "
        f"{DEFAULT_SORT!r} or {score_columns(models)[0]!r}"
    )


def diff_runs(tracking_uri: str, run_a: str, run_b: str) -> pd.DataFrame:
    """Params and provenance tags of two runs that differ: columns ``kind``, ``name``, ``a``, ``b``.

    A value missing from one run is None. Params come first, by name.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    first, second = (_get_run(client, run_id) for run_id in (run_a, run_b))
    rows = _differences("param", first.data.params, second.data.params)
    tags_a = {k: v for k, v in first.data.tags.items() if k in PROVENANCE_TAGS}
    tags_b = {k: v for k, v in second.data.tags.items() if k in PROVENANCE_TAGS}
    rows += _differences("tag", tags_a, tags_b)
    return pd.DataFrame(rows, columns=["kind", "name", "a", "b"])


def _get_run(client: mlflow.MlflowClient, ref: str) -> Run:
    """A run by its id or a unique prefix of it (the table shows 8 characters)."""
    if len(ref) < RUN_ID_LENGTH:
        experiments = [e.experiment_id for e in client.search_experiments()]
        matches = [
            run.info.run_id
            for run in client.search_runs(experiments, max_results=50_000)
            if run.info.run_id.startswith(ref)
        ]
        if len(matches) != 1:
            found = "no run" if not matches else f"{len(matches)} runs"
            raise CompareError(f"{found} with an id starting {ref!r}; give more characters")
        ref = matches[0]
    try:
        return client.get_run(ref)
    except mlflow.MlflowException as exc:
        raise CompareError(f"no run {ref!r} in the tracking store ({exc.message})") from exc


def _differences(kind: str, a: dict[str, str], b: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"kind": kind, "name": key, "a": a.get(key), "b": b.get(key)}
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


# ---------------------------------------------------------------------------- text
def format_comparison(table: pd.DataFrame, models: Sequence[str] = ("mind",)) -> str:
    """The comparison as an aligned text table: one ``value [low, high]`` cell per score."""
    if table.empty:
        return "No finished distill runs found."
    shown = pd.DataFrame(
        {
            "run": table["run_id"].str[:8],
            "task": table["task"],
            "started (UTC)": table["start_time"].dt.strftime("%Y-%m-%d %H:%M"),
        }
    )
    for column in SETTINGS:
        shown[HEADERS.get(column, column)] = table[column].map(_text)
    for model in models:
        prefix = "" if len(models) == 1 else f"{model} "
        for subset in SUBSETS:
            for metric in METRICS:
                name = f"{model}.{subset}.{HEAD}.{metric}"
                shown[f"{prefix}{subset} {metric.upper()}"] = [
                    _interval(v, lo, hi)
                    for v, lo, hi in zip(
                        table[name], table[f"{name}_low"], table[f"{name}_high"], strict=True
                    )
                ]
    shown["cache"] = table["logit_cache"].map(_text)
    return shown.to_string(index=False)


def format_diff(diff: pd.DataFrame, run_a: str, run_b: str) -> str:
    """The differences as text: ``name  A  B`` per row, params then tags."""
    if diff.empty:
        return f"Runs {run_a[:8]} and {run_b[:8]} have the same params and provenance tags."
    shown = diff.rename(columns={"a": run_a[:8], "b": run_b[:8]}).fillna("—")
    return shown.to_string(index=False)


def _interval(value: Any, low: Any, high: Any) -> str:
    if pd.isna(value):
        return "—"
    if pd.isna(low) or pd.isna(high):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)
