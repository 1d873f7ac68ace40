"""Nodes of the ``tune`` pipeline: one Optuna study per method, and the summary of a task's studies.

``tune_method(method, members)`` makes the node of one method: its objective builds the trial's
``DistillParams`` (the config with the trial's values), the method's model card exactly as the
distill pipeline does (``DistillParams.model_spec``), trains it on train (KD targets read from the
logit cache with the trial's ``combine`` when it distils) and returns the monitored val score of
the kept epoch. ``summarise_study`` turns the trial tables into the YAML of the best values, a
markdown report and MLflow metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

from mindkd.io.array_store import ArrayStore
from mindkd.io.logit_cache import LogitCache
from mindkd.models.spec import EhrInput, ImageNormaliser
from mindkd.pipelines.distill.nodes import read_teacher_targets
from mindkd.pipelines.distill.params import DistillParams
from mindkd.processing.normalise import store_layout
from mindkd.tasks import TaskParams
from mindkd.tracking.trials import TrialRuns
from mindkd.training import students as glue
from mindkd.training.tuning import Distribution, Reporter, best_values, run_study, with_values

from .params import TuneParams

logger = logging.getLogger(__name__)


def tuned_params(params: DistillParams, values: Mapping[str, Any]) -> DistillParams:
    """``params`` with a trial's ``values`` (dotted keys) set, validated as a whole."""
    return DistillParams.model_validate(with_values(params.model_dump(), values))


def tune_method(method: str, members: Mapping[str, Sequence[str]]) -> Callable[..., pd.DataFrame]:
    """The node that runs ``method``'s study (a closure keeps the signature Kedro types)."""

    def tune(
        params: DistillParams,
        tune: TuneParams,
        task: TaskParams,
        teacher_sizes: dict[str, int],
        image_normaliser: dict[str, Any],
        train_samples: pd.DataFrame,
        val_samples: pd.DataFrame,
        input_fingerprint: dict[str, Any],
        teacher_logits: LogitCache,
        timeseries: ArrayStore,
        image_store: ArrayStore,
    ) -> pd.DataFrame:
        if method not in tune.spaces:
            raise ValueError(f"{task.name}.tune.spaces has no {method!r}")
        definition = task.definition
        image = ImageNormaliser.model_validate(image_normaliser)
        ehr_input = EhrInput.model_validate(store_layout(timeseries).to_dict())
        targets: dict[str, pd.DataFrame] = {}
        seen = pd.concat([train_samples, val_samples], ignore_index=True)  # never a test row

        def targets_of(trial: DistillParams) -> pd.DataFrame:
            """The distill stage's own KD-target read, once per ensemble rule tried."""
            if trial.combine not in targets:
                targets[trial.combine] = read_teacher_targets(
                    teacher_logits, seen, input_fingerprint, trial, task, members
                )
            return targets[trial.combine]

        def objective(
            values: Mapping[str, Any], report: Reporter
        ) -> tuple[float, Mapping[str, float]]:
            trial = tuned_params(params, values)
            spec = trial.model_spec(method, definition, teacher_sizes, image, ehr_input)
            kd = targets_of(trial) if spec.uses_teachers else None
            train = glue.build_dataset(train_samples, spec, timeseries, image_store, kd)
            val = glue.build_dataset(val_samples, spec, timeseries, image_store, kd)
            _, result = glue.train_model(spec, train, val, on_epoch=report)
            epochs = len(result.history)
            return result.best_score, {"best_epoch": result.best_epoch, "epochs": epochs}

        name = f"{task.name}.tune.{method}"
        runs = TrialRuns.under_active_run(name)
        return run_study(
            name, tune.spaces[method], objective, tune, monitor=params.fit.monitor, runs=runs
        )

    tune.__name__ = f"tune_{method}"
    tune.__doc__ = (
        f"Optuna study of {method} on val: ``tune.trials`` points of ``tune.spaces.{method}``, "
        "each trained like the distill pipeline trains it; one row per trial."
    )
    return tune


def summarise_study(
    tune: TuneParams, task: TaskParams, **trials: pd.DataFrame
) -> tuple[str, str, dict[str, dict[str, float]]]:
    """The tuned values as YAML, the study as markdown, and MLflow metrics per method."""
    tuned: dict[str, Any] = {}
    metrics: dict[str, dict[str, float]] = {}
    lines = [
        f"# Tuning study: {task.name} (val split; test never read)",
        "",
        f"{tune.trials} trials per method, TPE sampler seed {tune.seed} "
        f"({tune.startup_trials} random trials first), pruner: {tune.pruner}.",
        "",
        "| method | complete | pruned | failed | best val score | median of complete | best values |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, table in trials.items():
        space = tune.spaces[method]
        states = table["state"].value_counts()
        complete = table[table["state"].eq("complete")]
        best = best_values(table, space)
        top = float(complete["score"].max())
        median = float(complete["score"].median())
        tuned.update(best)
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in best.items())
        lines.append(
            f"| {method} | {states.get('complete', 0)} | {states.get('pruned', 0)} | "
            f"{states.get('failed', 0)} | {top:.4f} | {median:.4f} | {shown} |"
        )
        for name, value in (
            ("best_score", top),
            ("median_score", median),
            ("trials", float(len(table))),
            ("pruned", float(states.get("pruned", 0))),
        ):
            metrics[f"tune.{method}.{name}"] = {"value": value, "step": 0}
    lines += ["", "## Search spaces", ""]
    for method, space in tune.spaces.items():
        lines.append(f"- **{method}**: " + "; ".join(_space(k, d) for k, d in space.items()))
    nested: dict[str, Any] = {}
    for key, value in sorted(tuned.items()):
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    header = (
        f"# Values chosen by `kedro run --pipelines tune` on {task.name}'s val split.\n"
        "# Copy into conf/local/ (or conf/base/parameters_distill.yml) to use them.\n"
    )
    text = header + yaml.safe_dump({task.name: {"distill": nested}}, sort_keys=True)
    return text, "\n".join(lines) + "\n", metrics


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _space(key: str, dist: Distribution) -> str:
    if dist.choices is not None:
        return f"`{key}` ∈ {{{', '.join(map(str, dist.choices))}}}"
    scale = "log" if dist.log else "linear"
    kind = "int" if dist.integer else scale
    return f"`{key}` ∈ [{_fmt(dist.low)}, {_fmt(dist.high)}] ({kind})"
