"""The study runner (``mindkd.training.tuning``) and its MLflow child runs (``tracking.trials``).

The objectives here are plain functions of the searched values, so every study runs in
milliseconds and its optimum is known.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from pydantic import ValidationError

from mindkd.tracking.trials import TAG_PARENT, TAG_STATE, TrialRuns
from mindkd.training.tuning import (
    Distribution,
    Reporter,
    StudySettings,
    best_values,
    run_study,
    with_values,
)

SPACE = {
    "fit.lr": Distribution(low=1e-4, high=1e-2, log=True),
    "alpha": Distribution(low=0.0, high=1.0),
    "distance": Distribution(choices=("bce", "mse")),
}
ALPHA = {"alpha": Distribution(low=0.0, high=1.0)}


def _quadratic(values: Mapping[str, Any], report: Reporter) -> tuple[float, Mapping[str, float]]:
    """Best at alpha = 0.7 with mse; three 'epochs' reported, the last one returned."""
    score = 1.0 - (values["alpha"] - 0.7) ** 2 - (0.1 if values["distance"] == "bce" else 0.0)
    for epoch in (1, 2, 3):
        report(epoch, score - 0.01 * (3 - epoch))
    return score, {"best_epoch": 3.0}


def test_with_values_sets_dotted_keys_and_refuses_a_key_that_is_not_there() -> None:
    tree = {"alpha": 0.5, "fit": {"lr": 1e-3, "epochs": 3}}
    out = with_values(tree, {"fit.lr": 2e-3, "alpha": 0.1})
    assert out == {"alpha": 0.1, "fit": {"lr": 2e-3, "epochs": 3}}
    assert tree["fit"]["lr"] == 1e-3  # the input is not changed
    with pytest.raises(KeyError, match=r"fit\.lrr"):
        with_values(tree, {"fit.lrr": 1.0})
    with pytest.raises(KeyError, match="fitt"):
        with_values(tree, {"fitt.lr": 1.0})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"low": 1.0, "high": 0.5}, "low < high"),
        ({"low": 0.0, "high": 1.0, "log": True}, "log range"),
        ({"low": 0.0, "high": 1.0, "choices": [1, 2]}, "not both"),
        ({}, "either low and high, or choices"),
    ],
)
def test_a_distribution_must_be_a_range_or_choices(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Distribution(**fields)


def test_a_seeded_study_is_reproducible_and_finds_the_optimum_region() -> None:
    settings = StudySettings(trials=16, seed=3, startup_trials=5, pruner="none")
    first = run_study("toy", SPACE, _quadratic, settings)
    again = run_study("toy", SPACE, _quadratic, settings)
    other = run_study("toy", SPACE, _quadratic, settings.model_copy(update={"seed": 4}))
    values = ["fit.lr", "alpha", "distance", "score"]
    pd.testing.assert_frame_equal(first[values], again[values])
    assert not first[values].equals(other[values])
    assert list(first["trial"]) == list(range(16))
    assert set(first["state"]) == {"complete"}
    best = best_values(first, SPACE)
    assert set(best) == set(SPACE)
    assert best["distance"] == "mse"
    assert abs(best["alpha"] - 0.7) < 0.2
    assert first["score"].max() == pytest.approx(1.0 - (best["alpha"] - 0.7) ** 2)


def test_the_median_pruner_stops_trials_below_the_median_and_records_them() -> None:
    def objective(values: Mapping[str, Any], report: Reporter) -> tuple[float, Mapping[str, float]]:
        score = values["alpha"]
        for epoch in range(1, 6):
            report(epoch, score)
        return score, {}

    settings = StudySettings(
        trials=12, seed=0, startup_trials=5, prune_after_trials=3, prune_after_epochs=1
    )
    trials = run_study("prune", ALPHA, objective, settings)
    pruned = trials[trials["state"].eq("pruned")]
    assert not pruned.empty
    complete = trials[trials["state"].eq("complete")]
    # a pruned trial keeps the best score it reported, and was below what had completed before it
    for _, row in pruned.iterrows():
        earlier = complete[complete["trial"] < row["trial"]]["score"]
        assert row["score"] < earlier.max()
        assert math.isfinite(row["score"])
    assert best_values(trials, ALPHA) == {"alpha": complete["score"].max()}


def test_a_trial_whose_score_cannot_be_ranked_is_recorded_failed_not_chosen() -> None:
    def objective(values: Mapping[str, Any], report: Reporter) -> tuple[float, Mapping[str, float]]:
        return (math.nan if values["alpha"] > 0.5 else values["alpha"]), {}

    settings = StudySettings(trials=8, seed=1, pruner="none")
    trials = run_study("nan", ALPHA, objective, settings)
    assert {"failed", "complete"} <= set(trials["state"])
    assert best_values(trials, ALPHA)["alpha"] <= 0.5


@pytest.fixture
def store(tmp_path: Path) -> Iterator[mlflow.MlflowClient]:
    """A sqlite store in tmp_path as the fluent API's store, the previous one restored after."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow.MlflowClient(uri)
    finally:
        mlflow.set_tracking_uri(previous)


def test_every_trial_is_a_finished_child_run_with_its_values_and_scores(
    store: mlflow.MlflowClient,
) -> None:
    client = store
    experiment = client.create_experiment("tune-test")
    with mlflow.start_run(experiment_id=experiment) as parent:
        runs = TrialRuns.under_active_run("ihm.tune.mind")
        runs.client = client
        trials = run_study(
            "ihm.tune.mind", SPACE, _quadratic, StudySettings(trials=3, pruner="none"), runs=runs
        )
    children = client.search_runs(
        [experiment], filter_string=f"tags.`{TAG_PARENT}` = '{parent.info.run_id}'"
    )
    assert len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags[TAG_STATE] == "complete"
        assert set(child.data.params) == set(SPACE)
        number = int(child.data.tags["mindkd.tune.trial"])
        row = trials[trials["trial"].eq(number)].iloc[0]
        assert child.data.metrics["tune/score"] == pytest.approx(row["score"])
        history = client.get_metric_history(child.info.run_id, "val/auroc")
        assert [m.step for m in history] == [1, 2, 3]
        assert child.data.params["distance"] == row["distance"]


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")]
)
def test_a_trial_that_raises_ends_its_run_failed_or_killed(
    store: mlflow.MlflowClient, error: type[BaseException], status: str
) -> None:
    client = store
    experiment = client.create_experiment("tune-raise")

    def objective(values: Mapping[str, Any], report: Reporter) -> tuple[float, Mapping[str, float]]:
        report(1, 0.5)
        raise error("boom")

    with mlflow.start_run(experiment_id=experiment) as parent:
        runs = TrialRuns.under_active_run("ihm.tune.no_kd")
        runs.client = client
        with pytest.raises(error):
            run_study("x", SPACE, objective, StudySettings(trials=2, pruner="none"), runs=runs)
    (child,) = client.search_runs(
        [experiment], filter_string=f"tags.`{TAG_PARENT}` = '{parent.info.run_id}'"
    )
    assert child.info.status == status
    assert TAG_STATE not in child.data.tags  # no state: it neither completed nor was pruned


def test_without_an_active_run_trials_are_not_tracked(store: mlflow.MlflowClient) -> None:
    assert mlflow.active_run() is None
    runs = TrialRuns.under_active_run("untracked")
    assert runs.parent_run_id is None
    trials = run_study("untracked", SPACE, _quadratic, StudySettings(trials=2), runs=runs)
    assert len(trials) == 2
