"""Hyperparameter search on the val split with Optuna.

A *search space* maps dotted parameter keys (``fit.lr``, ``baselines.no_kd.head_dropout``) to a
distribution (``Distribution``: a float or int range, linear or log, or a list of choices). A study
asks Optuna's seeded TPE sampler for ``trials`` points, scores each with the caller's objective
(train on train, return the monitored val score) and records every trial: its values, its state
(complete, pruned, failed), its score and its best epoch. The median pruner, when on, stops a trial
whose best val score so far is below the median of the earlier trials at the same epoch.

``with_values`` writes a point into a parameter tree (a key that is not already in the tree is an
error, so a misspelt search key never becomes a silently ignored setting).

Where trials are recorded is the caller's (``TrialRecorder``): ``mindkd.tracking.trials.TrialRuns``
makes each an MLflow child run of the active run.

Optuna is imported when a study runs, not with this module: the project's parameter schema
imports ``Distribution`` and ``StudySettings`` in every Kedro session.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

Reporter = Callable[[int, float], None]  # (epoch, val score): may raise Pruned


class Pruned(Exception):
    """Raised by a study's ``report`` when the pruner stops the trial."""


class Distribution(BaseModel):
    """One searched key: ``low``/``high`` (``log`` scale, ``integer`` draws) or ``choices``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = Field(False, description="draw integers from [low, high]")
    choices: tuple[Any, ...] | None = Field(None, min_length=2)

    @model_validator(mode="after")
    def _one_kind(self) -> Distribution:
        ranged = self.low is not None or self.high is not None
        if (self.choices is None) == (not ranged):
            if self.choices is None:
                raise ValueError("give either low and high, or choices")
            raise ValueError("give either low and high, or choices, not both")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"need low < high, got low={self.low}, high={self.high}")
            if self.log and self.low <= 0:
                raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


SearchSpace = Mapping[str, Distribution]


class StudySettings(BaseModel):
    """How many trials, the sampler's seed and the pruner (the same for every method searched)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(12, ge=1, description="trials per method: the search budget")
    seed: int = Field(0, ge=0, description="seed of the TPE sampler")
    startup_trials: int = Field(5, ge=1, description="random trials before TPE models the space")
    pruner: Literal["median", "none"] = "median"
    prune_after_trials: int = Field(4, ge=1, description="complete trials before pruning starts")
    prune_after_epochs: int = Field(3, ge=0, description="epochs a trial runs before it can stop")


def with_values(tree: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``tree`` with each dotted key of ``values`` set; every key must exist."""
    out = copy.deepcopy(dict(tree))
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node: Any = out
        for i, part in enumerate(parents):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"{key}: {'.'.join(parents[: i + 1])} is not a parameter")
            node = node[part]
        if not isinstance(node, dict) or leaf not in node:
            raise KeyError(f"{key}: not a parameter of this block")
        node[leaf] = value
    return out


class TrialRecord(Protocol):
    """Where one trial's progress goes (``mindkd.tracking.trials.TrialRuns``: an MLflow run)."""

    def epoch(self, monitor: str, epoch: int, score: float) -> None: ...

    def end(self, state: str, score: float | None, extra: Mapping[str, float]) -> None: ...


class TrialRecorder(Protocol):
    """Opens a record per trial; the context ends it as the trial ends (done, pruned, raised)."""

    def trial(
        self, number: int, values: Mapping[str, Any]
    ) -> AbstractContextManager[TrialRecord]: ...


class _Untracked:
    def epoch(self, monitor: str, epoch: int, score: float) -> None:
        pass

    def end(self, state: str, score: float | None, extra: Mapping[str, float]) -> None:
        pass


class Untracked:
    """Trials recorded nowhere (tests, or no tracking store)."""

    @contextmanager
    def trial(self, number: int, values: Mapping[str, Any]) -> Iterator[TrialRecord]:
        yield _Untracked()


Objective = Callable[[Mapping[str, Any], Reporter], tuple[float, Mapping[str, float]]]


def run_study(
    name: str,
    space: SearchSpace,
    objective: Objective,
    settings: StudySettings,
    *,
    monitor: str = "val/auroc",
    runs: TrialRecorder | None = None,
) -> pd.DataFrame:
    """Maximise ``objective(values, report)`` over ``space``; one row per trial.

    ``objective`` trains with ``values`` and returns (val score, extra numbers such as the best
    epoch); it calls ``report(epoch, score)`` after each epoch, which raises ``Pruned`` when the
    pruner stops the trial. Columns: ``trial``, ``state`` (complete | pruned | failed),
    ``score``, ``seconds``, the extra numbers and one column per searched key.
    """
    if not space:
        raise ValueError(f"{name}: the search space is empty")
    import optuna

    runs = runs or Untracked()
    sampler = optuna.samplers.TPESampler(
        seed=settings.seed, n_startup_trials=settings.startup_trials
    )
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=settings.prune_after_trials,
            n_warmup_steps=settings.prune_after_epochs,
        )
        if settings.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    rows: list[dict[str, Any]] = []
    for _ in range(settings.trials):
        trial = study.ask()
        values = {key: dist.suggest(trial, key) for key, dist in space.items()}
        rows.append(_one_trial(name, trial, values, objective, study, monitor, runs))
    return pd.DataFrame(rows)


def _one_trial(  # noqa: PLR0917 - the parts of one trial
    name: str,
    trial: optuna.Trial,
    values: Mapping[str, Any],
    objective: Objective,
    study: optuna.Study,
    monitor: str,
    runs: TrialRecorder,
) -> dict[str, Any]:
    from optuna.trial import TrialState

    start = time.perf_counter()
    row: dict[str, Any] = {"trial": trial.number}
    reported: list[float] = []
    with runs.trial(trial.number, values) as tracked:

        def report(epoch: int, score: float) -> None:
            tracked.epoch(monitor, epoch, score)
            if math.isfinite(score):
                reported.append(score)
                trial.report(score, epoch)
                if trial.should_prune():
                    raise Pruned(f"{name}: pruned after epoch {epoch}")

        try:
            score, extra = objective(values, report)
        except Pruned:
            study.tell(trial, state=TrialState.PRUNED)
            best = max(reported) if reported else math.nan
            tracked.end("pruned", best, {})
            row |= {"state": "pruned", "score": best}
        else:
            if math.isfinite(score):
                study.tell(trial, score)
                state = "complete"
            else:  # a score Optuna cannot rank (e.g. val had one class): recorded, not ranked
                study.tell(trial, state=TrialState.FAIL)
                state = "failed"
            tracked.end(state, score, extra)
            row |= {"state": state, "score": score, **extra}
    row["seconds"] = time.perf_counter() - start
    logger.info(
        "%s trial %d: %s, %s %.4f (%s)",
        name,
        trial.number,
        row["state"],
        monitor,
        row.get("score", math.nan),
        ", ".join(f"{k}={v}" for k, v in values.items()),
    )
    return row | dict(values)


def best_values(trials: pd.DataFrame, space: SearchSpace) -> dict[str, Any]:
    """The searched values of the complete trial with the highest score (the earliest on ties)."""
    complete = trials[trials["state"].eq("complete")]
    if complete.empty:
        raise ValueError("no trial completed: nothing to choose")
    best = complete.loc[complete["score"].idxmax()]
    return {key: _plain(best[key]) for key in space}


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
