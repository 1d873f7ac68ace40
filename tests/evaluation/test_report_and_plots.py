"""The comparison table, its markdown and the figures, from a small scored evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from mindkd.evaluation import (
    ScoreSettings,
    comparison_table,
    reliability_figure,
    roc_pr_figure,
    score_predictions,
    to_markdown,
)

MODELS = ["mind", "no_kd", "teachers"]


@pytest.fixture(scope="module")
def evaluated() -> tuple[pd.DataFrame, pd.DataFrame, object]:
    rng = np.random.default_rng(0)
    n = 60
    y = rng.integers(0, 2, size=n).astype(float)
    samples = pd.DataFrame(
        {"key": range(n), "kind": np.where(np.arange(n) % 3, "paired", "ehr_only"), "y": y}
    )
    paired = samples.loc[samples["kind"] == "paired", "key"].to_numpy()
    frames = []
    for quality, model in zip((2.0, 1.0, 3.0), MODELS, strict=True):
        z = quality * (2 * y - 1) + rng.normal(size=n)
        frames.append(
            pd.DataFrame({"model": model, "key": range(n), "head": "routed", "logit_0": z})
        )
        frames.append(pd.DataFrame({"model": model, "key": range(n), "head": "ehr", "logit_0": z}))
        if model != "no_kd":
            frames.append(
                pd.DataFrame({"model": model, "key": paired, "head": "fused", "logit_0": z[paired]})
            )
    predictions = pd.concat(frames, ignore_index=True)
    scores = score_predictions(
        predictions,
        samples,
        ["y"],
        "binary",
        ScoreSettings(seed=0),
        models=MODELS,
        reference="no_kd",
    )
    return predictions, samples, scores


def test_one_row_per_model_and_subset_with_intervals_and_cost(evaluated) -> None:
    _, _, scores = evaluated
    compression = {
        "mind": {
            "parameters": 1000.0,
            "state_dict_bytes": 2**20,
            "latency_p50_ms": 1.0,
            "latency_p95_ms": 2.0,
            "teacher_fraction": 0.05,
        },
        "teachers": {"parameters": 20000.0, "state_dict_bytes": 8e4},
    }
    table = comparison_table(scores, compression, MODELS)
    assert list(zip(table["model"], table["subset"], strict=True)) == [
        (m, s) for m in MODELS for s in ("full", "paired", "ehr_only")
    ]
    assert (table["auroc_low"] <= table["auroc"]).all() and (
        table["auroc"] <= table["auroc_high"]
    ).all()
    mind = table.set_index(["model", "subset"]).loc[("mind", "full")]
    assert mind["state_dict_mb"] == pytest.approx(1.0) and mind["teacher_fraction"] == 0.05
    assert mind["delta_auroc"] == pytest.approx(
        mind["auroc"] - table.set_index(["model", "subset"]).loc[("no_kd", "full"), "auroc"]
    )
    assert np.isnan(table.set_index(["model", "subset"]).loc[("no_kd", "full"), "delta_auroc"])
    assert np.isnan(table.set_index(["model", "subset"]).loc[("mind", "full"), "auroc_fused"])
    assert np.isfinite(table.set_index(["model", "subset"]).loc[("mind", "paired"), "auroc_fused"])

    text = to_markdown(table, "ihm: MIND vs baselines", "no_kd", ["a note"])
    lines = text.splitlines()
    assert lines[0] == "# ihm: MIND vs baselines" and "ΔAUROC vs no_kd" in lines[2]
    body = [
        line
        for line in lines
        if line.startswith("| mind") or line.startswith("| no_kd") or line.startswith("| teachers")
    ]
    assert len(body) == len(table) and lines[-1] == "- a note"
    assert f"{mind['auroc']:.3f} [{mind['auroc_low']:.3f}, {mind['auroc_high']:.3f}]" in body[0]
    assert "accuracy" not in lines[2] and "κ" not in lines[2]  # binary: no class metrics
    digits = table.assign(accuracy=0.9, accuracy_low=0.8, accuracy_high=0.95, macro_f1=0.7)
    header = to_markdown(digits, "avdigits", "no_kd").splitlines()[2]
    assert "| accuracy | macro-F1 |" in header and "κ" not in header  # unordered classes
    assert "κ linear" in to_markdown(digits.assign(kappa=0.5), "los", "no_kd").splitlines()[2]


def test_figures_have_one_curve_per_model_with_the_head(evaluated) -> None:
    predictions, samples, scores = evaluated
    fig = roc_pr_figure(
        predictions,
        samples,
        scores.table,
        labels=["y"],
        kind="binary",
        head="fused",
        models=MODELS,
        title="ihm",
    )
    assert isinstance(fig, Figure)
    roc, pr = fig.axes
    labels = [line.get_label() for line in roc.get_lines()]
    assert [label.split(" ")[0] for label in labels[:2]] == ["mind", "teachers"]  # no_kd: no fused
    curves = [line for line in pr.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label().split(" ")[0] for line in curves] == ["mind", "teachers"]
    (chance,) = [line for line in pr.get_lines() if line.get_label().startswith("_")]
    paired = samples[samples["kind"] == "paired"]
    assert chance.get_ydata()[0] == pytest.approx(paired["y"].mean())  # the no-skill precision
    assert f"n={len(paired)}" in fig.get_suptitle()

    rel = reliability_figure(scores.reliability, MODELS, title="ihm")
    assert len(rel.axes) == 2
    frequency, counts = rel.axes
    assert [line.get_label() for line in frequency.get_lines()] == ["perfect", *MODELS]
    table = scores.reliability
    for model, line in zip(MODELS, counts.get_lines(), strict=True):
        rows = table[
            (table["model"] == model)
            & (table["subset"] == "full")
            & (table["head"] == "routed")
            & (table["count"] > 0)
        ]
        np.testing.assert_array_equal(line.get_ydata(), rows["count"])  # predictions per bin
    assert counts.get_yscale() == "log"


def test_the_table_shows_the_differences_to_the_reference_not_the_students_contrasts(
    evaluated,
) -> None:
    predictions, samples, _ = evaluated
    scores = score_predictions(
        predictions,
        samples,
        ["y"],
        "binary",
        ScoreSettings(seed=0),
        models=MODELS,
        reference="no_kd",
        contrast="mind",
    )
    assert "teachers" in set(scores.differences["reference"])  # mind - teachers is there too
    table = comparison_table(scores, {}, MODELS, reference="no_kd").set_index(["model", "subset"])
    versus = scores.differences.query("head == 'routed' and metric == 'auroc'").set_index(
        ["model", "reference", "subset"]
    )
    for subset in ("full", "paired"):
        expected = versus.loc[("mind", "no_kd", subset)]
        row = table.loc[("mind", subset)]
        assert (row["delta_auroc"], row["delta_auroc_low"]) == (
            expected["difference"],
            expected["low"],
        )
    with pytest.raises(ValueError, match="name the reference"):
        comparison_table(scores, {}, MODELS)
