"""Scores per patient group: each group its own bootstrap test set; small groups kept, unscored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.evaluation.plots import subgroup_figure
from mindkd.evaluation.scoring import ScoreSettings
from mindkd.evaluation.subgroups import metric_key, score_subgroups, subgroup_markdown


def _data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 60
    keys = np.arange(1000, 1000 + n)
    y = (np.arange(n) % 2).astype(float)
    sex = np.where(np.arange(n) < 40, "Female", "Male")
    # "good" ranks perfectly among women and at chance among men; "flat" is chance everywhere
    good = np.where(sex == "Female", 4 * y - 2, rng.normal(size=n))
    samples = pd.DataFrame({"key": keys, "kind": "ehr_only", "y": y})
    predictions = pd.concat(
        [
            pd.DataFrame({"model": m, "key": keys, "head": "routed", "logit_0": z})
            for m, z in (("good", good), ("flat", rng.normal(size=n)))
        ]
        + [pd.DataFrame({"model": "good", "key": keys, "head": "ehr", "logit_0": -good})],
        ignore_index=True,
    )
    groups = pd.DataFrame(
        {
            "stay_id": keys,
            "sex": sex,
            "age_band": np.where(np.arange(n) < 5, "18-39", "60-79"),
            "race": "White",
            "insurance": np.where(y[:n] == 1, "Medicare", "Medicaid"),
        }
    )
    return predictions, samples, groups


def _score(min_size: int = 10) -> pd.DataFrame:
    predictions, samples, groups = _data()
    return score_subgroups(
        predictions, samples, groups, ["y"], kind="binary", settings=ScoreSettings(seed=1),
        models=["good", "flat"], min_size=min_size,
    )  # fmt: skip


def test_each_group_is_scored_on_its_own_stays_with_the_routed_head() -> None:
    table = _score().set_index(["attribute", "group", "model"])
    assert table.loc[("sex", "Female", "good"), "auroc"] == 1.0  # routed, not the ehr head
    assert table.loc[("sex", "Female", "good"), "n"] == 40
    assert 0.2 < table.loc[("sex", "Male", "good"), "auroc"] < 0.8
    assert table.loc[("sex", "Female", "good"), "auroc_low"] == 1.0
    assert table.loc[("race", "White", "flat"), "n"] == 60


def test_small_and_one_class_groups_are_reported_not_dropped() -> None:
    table = _score()
    small = table[table["group"] == "18-39"]
    assert small["model"].tolist() == ["good", "flat"] and (small["n"] == 5).all()
    assert (small["status"] == "too small (< 10 stays)").all() and small["auroc"].isna().all()
    one_class = table[table["attribute"] == "insurance"]
    assert set(one_class["status"]) == {"one class"} and len(one_class) == 4
    assert one_class["auroc"].isna().all() and one_class["auroc_skipped"].isna().all()
    scored = table[table["status"] == "ok"]
    assert (scored["auroc_skipped"] >= 0).all()  # skipped resamples counted, not logged
    assert list(dict.fromkeys(table["attribute"])) == ["sex", "age_band", "race", "insurance"]


def test_a_test_stay_without_a_group_row_is_an_error() -> None:
    predictions, samples, groups = _data()
    with pytest.raises(ValueError, match=r"1 test stay\(s\) have no row in the subgroup table"):
        score_subgroups(
            predictions, samples, groups.iloc[1:], ["y"], kind="binary",
            settings=ScoreSettings(), models=["good"], min_size=1,
        )  # fmt: skip


def test_report_plot_and_metric_keys() -> None:
    table = _score()
    text = subgroup_markdown(table)
    assert "| Female | 40 | 20 | 1.000 [1.000, 1.000] |" in text
    assert "| 18-39 | 5 | 2 | too small (< 10 stays) | too small (< 10 stays) |" in text
    figure = subgroup_figure(table, title="t")
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 4
    assert metric_key("80+") == "80plus"
