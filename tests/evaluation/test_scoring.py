"""Scores per model, subset and head: hand-computed AUROC / AUPRC, bootstrap, ECE, differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mindkd.evaluation import ScoreSettings, logit, score_predictions
from mindkd.training.metrics import resample_indices

Y = np.array([0, 0, 1, 1, 0, 1], dtype=float)
S = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
KINDS = ["paired", "paired", "paired", "paired", "ehr_only", "ehr_only"]


def _samples() -> pd.DataFrame:
    return pd.DataFrame({"key": [11, 12, 13, 14, 15, 16], "kind": KINDS, "y": Y})


def _predictions(model: str, head: str, keys: list[int], scores: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"model": model, "key": keys, "head": head, "logit_0": scores})


def _naive_auroc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return np.nan
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_point_estimates_match_a_hand_computed_case() -> None:
    predictions = _predictions("a", "routed", [11, 12, 13, 14, 15, 16], S)
    scores = score_predictions(predictions, _samples(), ["y"], "binary", ScoreSettings(seed=3))
    row = scores.table.set_index(["model", "subset", "head"]).loc[("a", "full", "routed")]
    # positives .35 .8 .9 vs negatives .1 .4 .2: 8 of 9 pairs ranked right
    assert row["auroc"] == pytest.approx(8 / 9)
    # ranked .9+ .8+ .4- .35+ .2- .1-: precision 1, 1, 3/4 at the positives
    assert row["auprc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert row["n"] == 6 and row["positives"] == 3 and row["n_bootstrap"] == 1000


def test_bootstrap_interval_matches_a_hand_loop_over_the_same_resamples() -> None:
    predictions = _predictions("a", "routed", [11, 12, 13, 14, 15, 16], S)
    settings = ScoreSettings(n_bootstrap=1000, level=0.9, seed=3)
    row = score_predictions(predictions, _samples(), ["y"], "binary", settings).table.iloc[0]
    values = np.array([_naive_auroc(Y[i], S[i]) for i in resample_indices(6, 1000, seed=3)])
    usable = values[np.isfinite(values)]
    assert row["auroc_skipped"] == 1000 - len(usable) > 0  # one-class draws are skipped
    low, high = np.percentile(usable, [5, 95])
    assert (row["auroc_low"], row["auroc_high"]) == (pytest.approx(low), pytest.approx(high))


def test_heads_are_scored_only_on_subsets_they_cover() -> None:
    paired = [11, 12, 13, 14]
    predictions = pd.concat(
        [
            _predictions("a", "routed", [11, 12, 13, 14, 15, 16], S),
            _predictions("a", "cxr", paired, S[:4]),
        ]
    )
    table = score_predictions(predictions, _samples(), ["y"], "binary", ScoreSettings()).table
    assert set(zip(table["subset"], table["head"], strict=True)) == {
        ("full", "routed"),
        ("paired", "routed"),
        ("ehr_only", "routed"),  # the stays without an X-ray
        ("paired", "cxr"),
    }
    cxr = table[table["head"] == "cxr"].iloc[0]
    assert cxr["n"] == 4 and cxr["auroc"] == pytest.approx(_naive_auroc(Y[:4], S[:4]))


def test_expected_calibration_error_of_a_hand_made_case() -> None:
    samples = pd.DataFrame({"key": range(8), "kind": "paired", "y": [0, 0, 0, 1, 1, 1, 1, 1]})
    probs = np.array([0.25] * 4 + [0.75] * 4)
    predictions = _predictions("a", "routed", list(range(8)), logit(probs))
    table = score_predictions(
        predictions, samples, ["y"], "binary", ScoreSettings(ece_bins=4)
    ).table
    # bin [.25, .5): observed 1/4 = .25 (gap 0); bin [.75, 1]: observed 1.0 (gap .25); half the mass
    assert table["ece"].iloc[0] == pytest.approx(0.5 * 0.25)


def test_identical_models_differ_by_exactly_zero_on_shared_resamples() -> None:
    keys = [11, 12, 13, 14, 15, 16]
    more = np.array([0.1, 0.4, 0.95, 0.8, 0.2, 0.9])  # the 0.35 positive moved to the top
    predictions = pd.concat(
        [
            _predictions("ref", "routed", keys, S),
            _predictions("same", "routed", keys, S),
            _predictions("better", "routed", keys, more),
        ]
    )
    samples = pd.DataFrame({"key": keys, "kind": "paired", "y": Y})
    scores = score_predictions(
        predictions, samples, ["y"], "binary", ScoreSettings(seed=1), reference="ref"
    )
    diffs = scores.differences.set_index(["model", "subset", "metric"])
    same = diffs.loc[("same", "full", "auroc")]
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    better = diffs.loc[("better", "full", "auroc")]
    assert better["difference"] == pytest.approx(1 - 8 / 9)
    assert 0.0 <= better["low"] <= better["high"]  # never worse on any resample


def test_multilabel_scores_are_macro_averages() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(40, 3)).astype(float)
    logits = y * 2.0 - 1.0 + rng.normal(size=y.shape)
    logits[:, 2] = rng.normal(size=40)  # one uninformative label
    samples = pd.DataFrame(y, columns=["l0", "l1", "l2"]).assign(key=range(40), kind="paired")
    predictions = pd.DataFrame(logits, columns=["logit_0", "logit_1", "logit_2"]).assign(
        model="m", key=range(40), head="routed"
    )
    table = score_predictions(
        predictions, samples, ["l0", "l1", "l2"], "multilabel", ScoreSettings()
    ).table
    expected = np.mean([_naive_auroc(y[:, k], logits[:, k]) for k in range(3)])
    assert table["auroc"].iloc[0] == pytest.approx(expected)


def test_resamples_by_subject_move_a_subjects_stays_together() -> None:
    """A subject's stays are not independent: the bootstrap draws subjects. With five identical
    stays per subject the interval is that of 40 subjects, about sqrt(5) times wider than a
    bootstrap of the 200 stays would claim."""
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(40), 5)
    y = np.repeat(np.arange(40) % 2, 5).astype(float)
    z = np.repeat(rng.normal(size=40) + 0.8 * (np.arange(40) % 2), 5)
    keys = np.arange(200)
    samples = pd.DataFrame({"key": keys, "kind": "ehr_only", "y": y, "subject_id": subjects})
    predictions = pd.DataFrame({"model": "m", "key": keys, "head": "routed", "logit_0": z})

    def width(table: pd.DataFrame) -> float:
        row = score_predictions(predictions, table, ["y"], "binary", ScoreSettings()).table.iloc[0]
        return float(row["auroc_high"] - row["auroc_low"])

    by_subject, by_stay = width(samples), width(samples.drop(columns="subject_id"))  # 0.21 vs 0.10
    assert by_subject > 1.8 * by_stay


def test_one_stay_per_subject_is_the_row_bootstrap_draw_for_draw() -> None:
    from mindkd.training.metrics import Resamples, resample_indices

    groups = Resamples.of_groups(np.array([10, 30, 20, 40]), n_resamples=7, seed=3)
    rows = Resamples(resample_indices(4, 7, 3), np.arange(4))
    np.testing.assert_array_equal(groups.weights(), rows.weights())


def test_the_student_is_contrasted_with_every_other_model_on_the_same_resamples() -> None:
    """``contrast``: the student minus every model, paired; the reference's rows stay as they
    are. Each contrast's interval is that of the per-resample difference: the student against a
    copy of itself is exactly 0 on every resample, whatever the intervals of either."""
    rng = np.random.default_rng(4)
    keys = list(range(60))
    y = (rng.random(60) < 0.4).astype(float)
    student = y + rng.normal(scale=0.8, size=60)
    other = y + rng.normal(scale=1.5, size=60)
    predictions = pd.concat(
        [
            _predictions("mind", "routed", keys, student),
            _predictions("no_kd", "routed", keys, other),
            _predictions("zero_filled", "routed", keys, rng.normal(size=60)),
            _predictions("copy", "routed", keys, student),
        ]
    )
    samples = pd.DataFrame({"key": keys, "kind": "paired", "y": y})
    settings = ScoreSettings(seed=2)
    scores = score_predictions(
        predictions, samples, ["y"], "binary", settings, reference="no_kd", contrast="mind"
    )
    diffs = scores.differences.query("metric == 'auroc' and subset == 'full'")
    pairs = set(zip(diffs["model"], diffs["reference"], strict=True))
    assert pairs == {
        ("mind", "no_kd"),
        ("zero_filled", "no_kd"),
        ("copy", "no_kd"),
        ("mind", "zero_filled"),
        ("mind", "copy"),
    }
    table = scores.table.query("subset == 'full'").set_index("model")
    versus = diffs.set_index(["model", "reference"])
    own = versus.loc[("mind", "copy")]
    assert (own["difference"], own["low"], own["high"]) == (0.0, 0.0, 0.0)
    zf = versus.loc[("mind", "zero_filled")]
    assert zf["difference"] == pytest.approx(
        table.loc["mind", "auroc"] - table.loc["zero_filled", "auroc"]
    )
    # the paired interval is narrower than one built from the two models' own intervals
    unpaired = (table.loc["mind", "auroc_high"] - table.loc["zero_filled", "auroc_low"]) - (
        table.loc["mind", "auroc_low"] - table.loc["zero_filled", "auroc_high"]
    )
    assert zf["high"] - zf["low"] < unpaired
    assert versus.loc[("mind", "no_kd")]["difference"] == pytest.approx(
        table.loc["mind", "auroc"] - table.loc["no_kd", "auroc"]
    )


def _multiclass_case(seed: int = 5, n: int = 120, k: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    labels = [f"c{j}" for j in range(k)]
    samples = pd.DataFrame(np.eye(k)[y], columns=labels).assign(
        key=np.arange(n), kind="paired", subject_id=np.arange(n) // 2
    )
    frames = []
    for model, noise in (("mind", 0.7), ("no_kd", 1.5)):
        z = rng.normal(scale=noise, size=(n, k))
        z[np.arange(n), y] += 1.0
        frame = pd.DataFrame(z, columns=[f"logit_{j}" for j in range(k)])
        frames.append(frame.assign(model=model, key=np.arange(n), head="routed"))
    return pd.concat(frames, ignore_index=True), samples


def test_a_multiclass_task_gets_the_class_metrics_with_paired_deltas() -> None:
    """Accuracy, macro-F1 and (ordered classes) linear κ of the arg-max class, with intervals and
    the paired difference to the reference, for a multiclass task only."""
    from sklearn.metrics import cohen_kappa_score

    predictions, samples = _multiclass_case()
    labels = ["c0", "c1", "c2", "c3"]
    scores = score_predictions(
        predictions,
        samples,
        labels,
        "multiclass",
        ScoreSettings(seed=1),
        reference="no_kd",
        ordinal=True,
    )
    mind = scores.table.query("model == 'mind' and subset == 'full'").iloc[0]
    z = predictions.query("model == 'mind'")[[f"logit_{j}" for j in range(4)]].to_numpy()
    truth = samples[labels].to_numpy().argmax(axis=1)
    expected = cohen_kappa_score(truth, z.argmax(axis=1), weights="linear", labels=range(4))
    assert mind["kappa"] == pytest.approx(expected)
    assert mind["accuracy"] == pytest.approx((z.argmax(axis=1) == truth).mean())
    for metric in ("accuracy", "macro_f1", "kappa"):
        assert mind[f"{metric}_low"] < mind[metric] < mind[f"{metric}_high"]
    delta = scores.differences.query("metric == 'kappa' and subset == 'full'").iloc[0]
    assert delta["model"] == "mind" and delta["low"] <= delta["difference"] <= delta["high"]
    assert np.isfinite(delta["low"])  # both models' draws lined up on the same resamples
    binary = score_predictions(
        _predictions("a", "routed", [11, 12, 13, 14, 15, 16], S), _samples(), ["y"], "binary",
        ScoreSettings(),
    )  # fmt: skip
    assert "kappa" not in binary.table.columns and "accuracy" not in binary.table.columns
    unordered = score_predictions(predictions, samples, labels, "multiclass", ScoreSettings())
    assert "accuracy" in unordered.table.columns and "kappa" not in unordered.table.columns
