"""Training curves, cohort flow and comparison bars: what is drawn equals what the inputs say."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from mindkd.evaluation.plots import (
    SELECTED_LABEL,
    cohort_flow_figure,
    comparison_figure,
    selected_epoch,
    training_curves_figure,
)


def _history(auroc: list[float], *, best: bool = True, **extra: Any) -> dict[str, Any]:
    """A fit history whose losses are known functions of the epoch."""
    epochs = [
        {
            "epoch": float(e),
            "train/loss": 1.0 / e,
            "val/loss": 1.0 / e + 0.1,
            "val/auroc": a,
        }
        for e, a in enumerate(auroc, start=1)
    ]
    history: dict[str, Any] = {"monitor": "val/auroc", "epochs": epochs, **extra}
    if best:
        history["best_epoch"] = int(np.argmax(auroc)) + 1
        history["best_score"] = max(auroc)
    return history


def _marker(ax: Any, label: str = SELECTED_LABEL) -> tuple[float, float]:
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


AUROC = {
    "mind": [0.6, 0.7, 0.8, 0.75],
    "no_kd": [0.55, 0.65, 0.62],
    "resnet18": [0.5, 0.58, 0.61, 0.66, 0.64],
}
PRETRAIN = [0.62, 0.7, 0.69]


@pytest.fixture(scope="module")
def curves() -> Figure:
    histories = {name: _history(a, parameters=1234) for name, a in AUROC.items()}
    histories["no_kd"]["stopped_early"] = True
    return training_curves_figure(
        histories, {"resnet18": _history(PRETRAIN)}, columns=2, title="ihm teachers:"
    )


def test_curves_have_a_loss_and_a_metric_axis_per_model(curves: Figure) -> None:
    assert len(curves.axes) == 2 * len(AUROC)  # three models in two columns: no empty cell
    loss_axes, metric_axes = curves.axes[0::2], curves.axes[1::2]
    assert [ax.get_title().split(",")[0] for ax in loss_axes] == list(AUROC)
    assert all(ax.get_ylabel() == "val/auroc" for ax in metric_axes)
    mind_loss = {line.get_label(): line for line in loss_axes[0].get_lines()}
    np.testing.assert_allclose(mind_loss["train loss"].get_ydata(), 1.0 / np.arange(1, 5))
    np.testing.assert_allclose(mind_loss["val loss"].get_ydata(), 1.0 / np.arange(1, 5) + 0.1)
    assert "1,234 params" in loss_axes[0].get_title()
    assert "early stop" in loss_axes[1].get_title() and "early stop" not in loss_axes[0].get_title()
    assert curves.get_suptitle() == "ihm teachers: training curves"


def test_the_selected_epoch_is_marked_at_the_best_val_auroc(curves: Figure) -> None:
    for (name, auroc), ax in zip(AUROC.items(), curves.axes[1::2], strict=True):
        best = int(np.argmax(auroc)) + 1
        assert _marker(ax) == (best, max(auroc)), name
        assert f"@ {best}" in curves.axes[2 * list(AUROC).index(name)].get_title()
        *_, metric = (line for line in ax.get_lines() if line.get_label() == "val/auroc")
        np.testing.assert_allclose(metric.get_ydata(), auroc)  # the fine-tuning phase
        np.testing.assert_array_equal(metric.get_xdata(), np.arange(1, len(auroc) + 1))


def test_pre_training_comes_first_at_epochs_up_to_zero(curves: Figure) -> None:
    ax = curves.axes[5]  # resnet18's metric axis
    x, y = _marker(ax, f"{SELECTED_LABEL} (pre-training)")
    assert (x, y) == (int(np.argmax(PRETRAIN)) + 1 - len(PRETRAIN), max(PRETRAIN))
    pretrain_line = ax.get_lines()[0]
    np.testing.assert_array_equal(pretrain_line.get_xdata(), [-2, -1, 0])
    assert ax.get_xlabel() == "epoch (≤ 0: pre-training)"
    assert curves.axes[1].get_xlabel() == "epoch"  # mind has no pre-training
    legend = [text.get_text() for text in curves.legends[0].get_texts()]
    assert legend == [
        "train loss",
        "val loss",
        "val/auroc",
        SELECTED_LABEL,
        f"{SELECTED_LABEL} (pre-training)",
    ]


def test_selected_epoch_falls_back_to_the_monitored_value() -> None:
    assert selected_epoch(_history([0.5, 0.9, 0.7], best=False)) == 2
    by_loss = _history([0.5, 0.9, 0.7], best=False, monitor="val/loss")
    assert selected_epoch(by_loss) == 3  # val loss 1/e + 0.1 is lowest at the last epoch
    kept = _history([0.5, 0.9, 0.7])
    kept["best_epoch"] = 3  # e.g. monitored on AUPRC: the kept weights win over the AUROC argmax
    assert selected_epoch(kept) == 3
    assert selected_epoch({"epochs": []}) is None


def test_a_model_without_epochs_gets_an_empty_panel() -> None:
    fig = training_curves_figure({"mind": {"epochs": []}})
    loss_ax, metric_ax = fig.axes
    assert [t.get_text() for t in loss_ax.texts] == ["no epochs recorded"]
    assert all(line.get_label() != SELECTED_LABEL for line in metric_ax.get_lines())


FLOW = pd.DataFrame(
    {
        "step": ["icustays", "drop_transfers", "keep_adults", "ihm_min_stay"],
        "kept": [1000, 900, 880, 600],
        "dropped": [0, 100, 20, 280],
        "reason": ["all ICU stays", "first_careunit != last_careunit", "age < 18", "< 48 h"],
    }
)
PAIRING = {
    "stays": 600,
    "paired": 200,
    "ehr_only": 400,
    "by_split": {
        "test": {"stays": 120, "paired": 40, "ehr_only": 80},
        "train": {"stays": 420, "paired": 140, "ehr_only": 280},
        "val": {"stays": 60, "paired": 20, "ehr_only": 40},
    },
}


def _bars(ax: Any) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _intervals(ax: Any) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_cohort_flow_bars_are_the_kept_and_dropped_counts() -> None:
    fig = cohort_flow_figure(FLOW, PAIRING, title="ihm:")
    assert len(fig.axes) == 2
    funnel, final = fig.axes
    kept, dropped = _bars(funnel)
    assert [bar.get_width() for bar in kept] == FLOW["kept"].tolist()
    assert [bar.get_width() for bar in dropped] == FLOW["dropped"].tolist()
    assert [bar.get_x() for bar in dropped] == FLOW["kept"].tolist()  # drawn after the kept part
    labels = [t.get_text() for t in funnel.get_yticklabels()]
    assert labels[0] == "icustays\nall ICU stays"
    assert labels[1] == "drop_transfers\ndrops: first_careunit != last_careunit"
    assert funnel.yaxis_inverted()  # the first step on top
    assert [t.get_text() for t in funnel.texts][-1] == " 600  (−280)"

    paired, ehr_only = _bars(final)
    assert [t.get_text() for t in final.get_yticklabels()] == ["train", "val", "test", "all"]
    assert [bar.get_width() for bar in paired] == [140, 20, 40, 200]
    assert [bar.get_width() for bar in ehr_only] == [280, 40, 80, 400]
    assert final.texts[-1].get_text() == " 200 + 400\n 33% paired"
    assert fig.get_suptitle() == "ihm: cohort flow"


def test_cohort_flow_without_a_pairing_report_has_one_panel() -> None:
    fig = cohort_flow_figure(FLOW)
    assert len(fig.axes) == 1 and len(_bars(fig.axes[0])) == 2


def _table() -> pd.DataFrame:
    rows = []
    for i, model in enumerate(["mind", "no_kd", "teachers"]):
        for subset, n in (("full", 100), ("paired", 40)):
            if model == "no_kd" and subset == "paired":
                continue  # a model missing from one subset
            auroc, auprc = 0.7 + 0.05 * i + (0.01 if subset == "paired" else 0), 0.3 + 0.1 * i
            rows.append(
                {
                    "model": model,
                    "subset": subset,
                    "n": n,
                    "auroc": auroc,
                    "auroc_low": auroc - 0.1,
                    "auroc_high": auroc + 0.05,
                    "auprc": auprc,
                    "auprc_low": auprc - 0.2,
                    "auprc_high": auprc + 0.15,
                }
            )
    return pd.DataFrame(rows)


def test_comparison_bars_are_the_table_values_with_their_intervals() -> None:
    table = _table()
    fig = comparison_figure(table, level=0.9, title="ihm:")
    assert len(fig.axes) == 2
    indexed = table.set_index(["model", "subset"])
    models = ["mind", "no_kd", "teachers"]
    for ax, metric in zip(fig.axes, ("auroc", "auprc"), strict=True):
        assert ax.get_title() == f"{metric.upper()}, 90% bootstrap CI"
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "mind",
            "no_kd",
            "teacher\nensembles",
        ]
        assert ax.get_xticklabels()[0].get_fontweight() == "bold"
        for container, subset in zip(_bars(ax), ("full", "paired"), strict=True):
            for bar, model in zip(container, models, strict=True):
                if (model, subset) not in indexed.index:
                    assert bar.get_height() == 0.0
                    continue
                row = indexed.loc[(model, subset)]
                assert bar.get_height() == pytest.approx(row[metric])
        # the error bars span the bootstrap intervals of the (model, subset) cells present
        for intervals, subset in zip(_intervals(ax), ("full", "paired"), strict=True):
            segments = intervals.lines[2][0].get_segments()
            present = [m for m in models if (m, subset) in indexed.index]
            assert len(segments) == len(present)
            for segment, model in zip(segments, present, strict=True):
                row = indexed.loc[(model, subset)]
                low, high = segment[:, 1]
                assert (low, high) == pytest.approx((row[f"{metric}_low"], row[f"{metric}_high"]))
        values = [t.get_text() for t in ax.texts]
        assert len(values) == 5  # one per (model, subset) present
        assert f"{indexed.loc[('mind', 'full'), metric]:.2f}" == values[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["full test (n=100)", "paired test (n=40)"]


def test_comparison_draws_any_interval_the_bootstrap_can_give() -> None:
    """A percentile interval may exclude its point (real demo: AUPRC 0.325 in [0.328, 0.467]),
    be degenerate, or be missing (one class in every resample): each is drawn as it is."""
    table = pd.DataFrame(
        [
            {"model": "mind", "subset": "full", "n": 15, "auroc": 0.7, "auroc_low": 0.72,
             "auroc_high": 0.9, "auprc": 0.325, "auprc_low": 0.328, "auprc_high": 0.467},
            {"model": "mind", "subset": "paired", "n": 4, "auroc": 0.5, "auroc_low": 0.5,
             "auroc_high": 0.5, "auprc": float("nan"), "auprc_low": float("nan"),
             "auprc_high": float("nan")},
        ]
    )  # fmt: skip
    fig = comparison_figure(table)
    auroc_ax, auprc_ax = fig.axes
    full, paired = (c.lines[2][0].get_segments() for c in _intervals(auprc_ax))
    assert [tuple(s[:, 1]) for s in full] == [pytest.approx((0.328, 0.467))]
    assert paired == []  # no interval: nothing drawn, no error
    assert _bars(auprc_ax)[0][0].get_height() == pytest.approx(0.325)
    full, paired = (c.lines[2][0].get_segments() for c in _intervals(auroc_ax))
    assert [tuple(s[:, 1]) for s in full] == [pytest.approx((0.72, 0.9))]
    assert [tuple(s[:, 1]) for s in paired] == [pytest.approx((0.5, 0.5))]


def test_the_confusion_figure_counts_each_true_class_and_normalises_rows() -> None:
    from mindkd.evaluation.plots import confusion_figure

    labels = ["a", "b", "c"]
    y = np.array([0, 0, 1, 2, 2, 2])
    samples = pd.DataFrame(np.eye(3)[y], columns=labels).assign(key=range(6), kind="paired")
    z = np.eye(3)[[0, 1, 1, 2, 2, 0]] * 3.0  # rows: a->a, a->b, b->b, c->c, c->c, c->a
    predictions = pd.DataFrame(z, columns=["logit_0", "logit_1", "logit_2"]).assign(
        model="m", key=range(6), head="routed"
    )
    fig = confusion_figure(predictions, samples, labels, ["m", "absent"])
    ax = fig.axes[0]
    shares = ax.images[0].get_array()
    np.testing.assert_allclose(shares[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(shares[2], [1 / 3, 0.0, 2 / 3])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a (2)", "b (1)", "c (3)"]
    assert "accuracy 0.667" in ax.get_title()
