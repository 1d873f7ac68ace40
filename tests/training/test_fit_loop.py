"""fit / predict on a tiny learnable problem: learning, early stopping, best weights, determinism."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn
from training_helpers import TinyStudent, state_equal, synthetic_dataset

from mindkd.training import (
    FitConfig,
    MindLoss,
    MindLossConfig,
    RoutedEvaluator,
    fit,
    make_loader,
    predict,
    seed_everything,
)
from mindkd.training.fit import _LearningRate

QUIET = {"progress": False}


def loaders(seed: int = 0, batch_size: int = 16) -> tuple[Any, Any]:
    train = make_loader(synthetic_dataset(96, seed=1), batch_size, shuffle=True, seed=seed)
    val = make_loader(synthetic_dataset(48, seed=2), 48, shuffle=False)
    return train, val


def test_fit_learns_the_task_with_distillation() -> None:
    seed_everything(0)
    model = TinyStudent()
    loss = MindLoss("binary", MindLossConfig(alpha=0.5, temperature=2.0))
    train, val = loaders()
    cfg = FitConfig(epochs=12, batch_size=16, lr=0.01, patience=None, warmup_epochs=1, **QUIET)
    result = fit(model, loss, train, val, RoutedEvaluator("binary", loss_fn=loss), cfg)
    first, best = result.history[0], result.history[result.best_epoch - 1]
    assert len(result.history) == 12
    assert best["val/auroc"] == result.best_score > first["val/auroc"] + 0.2
    assert result.best_score > 0.95
    assert best["val/loss"] < first["val/loss"]
    expected_terms = {
        f"train/{t}/{h}" for t in ("task", "kd", "loss") for h in ("ehr", "cxr", "fused")
    }
    assert expected_terms | {"train/loss", "train/task", "train/kd", "lr", "seconds"} <= set(first)
    assert all(r["train/kd/ehr"] > 0 for r in result.history)
    assert state_equal(model.state_dict(), result.state_dict)


class ScriptedEvaluator:
    """Returns a fixed sequence of scores and remembers the weights it was shown each epoch."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.states: list[dict[str, torch.Tensor]] = []

    def __call__(self, model: nn.Module, loader: Iterable[Any]) -> dict[str, float]:
        self.states.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"score": self.scores[len(self.states) - 1]}


def test_early_stopping_restores_the_best_epoch() -> None:
    seed_everything(0)
    model = TinyStudent()
    evaluator = ScriptedEvaluator([0.5, 0.7, math.nan, 0.65, 0.69, 0.9, 0.95])
    train, val = loaders()
    cfg = FitConfig(epochs=7, monitor="val/score", patience=3, lr=0.01, **QUIET)
    result = fit(model, MindLoss("binary", {"alpha": 0.0}), train, val, evaluator, cfg)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]  # 3 epochs without beating 0.7
    assert result.stopped_early and result.best_epoch == 2 and result.best_score == 0.7
    assert state_equal(result.state_dict, evaluator.states[1])
    assert state_equal(model.state_dict(), evaluator.states[1])
    assert not state_equal(evaluator.states[4], evaluator.states[1])

    minimise = ScriptedEvaluator([3.0, 2.0, 2.5, 1.0])
    result = fit(
        TinyStudent(),
        MindLoss("binary", {"alpha": 0.0}),
        train,
        val,
        minimise,
        FitConfig(epochs=4, monitor="val/score", mode="min", patience=2, **QUIET),
    )
    assert result.best_epoch == 4 and result.best_score == 1.0 and not result.stopped_early


def test_same_seed_gives_identical_history_and_weights() -> None:
    def run(seed: int) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
        seed_everything(seed)
        model = TinyStudent(dropout=0.3)  # dropout draws from torch's RNG
        train, val = loaders(seed)
        cfg = FitConfig(epochs=3, lr=0.02, seed=seed, scheduler="cosine", **QUIET)
        loss = MindLoss("binary", MindLossConfig(alpha=0.3))
        result = fit(model, loss, train, val, RoutedEvaluator("binary"), cfg)
        history = [{k: v for k, v in r.items() if k != "seconds"} for r in result.history]
        return history, result.state_dict

    history_a, state_a = run(0)
    history_b, state_b = run(0)
    assert history_a == history_b
    assert state_equal(state_a, state_b)
    history_c, state_c = run(1)
    assert history_c != history_a and not state_equal(state_a, state_c)


def test_learning_rate_warmup_cosine_and_plateau() -> None:
    cosine = _LearningRate(FitConfig(lr=1.0, epochs=2, warmup_epochs=1, scheduler="cosine"), 2)
    assert [cosine.at(s) for s in range(4)] == pytest.approx([0.5, 1.0, 1.0, 0.5])
    plateau = _LearningRate(
        FitConfig(lr=1.0, scheduler="plateau", plateau_patience=1, plateau_factor=0.1), 5
    )
    for epoch, score in enumerate([0.5, 0.6, 0.6, 0.55], start=1):
        plateau.end_epoch(epoch, score)
    assert plateau.at(7) == pytest.approx(0.1)  # two epochs without improvement > patience 1
    assert _LearningRate(FitConfig(lr=0.3, scheduler="none"), 5).at(17) == 0.3


def test_predict_returns_heads_and_routed_logits_in_dataset_order() -> None:
    seed_everything(0)
    model = TinyStudent()
    dataset = synthetic_dataset(12, seed=3)
    shuffled = make_loader(dataset, batch_size=5, shuffle=True, seed=4)
    out = predict(model, shuffled)
    assert out["position"].tolist() == list(range(12))
    assert out["keys"].tolist() == [f"s{i:03d}" for i in range(12)]
    kind = np.arange(12) % 3  # 0 paired, 1 EHR only, 2 CXR only
    assert np.isnan(out["ehr"][kind == 2]).all() and np.isfinite(out["ehr"][kind != 2]).all()
    assert np.isnan(out["fused"][kind != 0]).all() and np.isfinite(out["fused"][kind == 0]).all()
    np.testing.assert_array_equal(out["routed"][kind == 0], out["fused"][kind == 0])
    np.testing.assert_array_equal(out["routed"][kind == 1], out["ehr"][kind == 1])
    np.testing.assert_array_equal(out["routed"][kind == 2], out["cxr"][kind == 2])
    mean = predict(model, make_loader(dataset, batch_size=12, shuffle=False), routing="mean")
    paired = np.stack([out["ehr"], out["cxr"], out["fused"]])[:, kind == 0].mean(axis=0)
    np.testing.assert_allclose(mean["routed"][kind == 0], paired, rtol=1e-6)
    assert model.training  # predict restores the mode it found


def test_bad_fit_configuration_is_rejected() -> None:
    with pytest.raises(ValidationError, match="patiense"):
        FitConfig.model_validate({"patiense": 3})
    with pytest.raises(ValidationError, match="scheduler"):
        FitConfig(scheduler="step")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="device"):
        FitConfig(device="tpu")
    with pytest.raises(ValidationError, match="monitor"):
        FitConfig(monitor="auroc")
    train, val = loaders()
    cfg = FitConfig(epochs=1, monitor="val/auroc_typo", **QUIET)
    with pytest.raises(ValueError, match=r"config key `monitor`.*val/auroc"):
        fit(
            TinyStudent(),
            MindLoss("binary", {"alpha": 0.0}),
            train,
            val,
            RoutedEvaluator("binary"),
            cfg,
        )


def test_amp_is_ignored_on_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("autocast is active on CUDA")
    histories = []
    for amp in ("off", "bf16"):
        seed_everything(0)
        train, val = loaders()
        cfg = FitConfig(epochs=2, lr=0.01, amp=amp, device="auto", **QUIET)
        result = fit(
            TinyStudent(),
            MindLoss("binary", {"alpha": 0.0}),
            train,
            val,
            RoutedEvaluator("binary"),
            cfg,
        )
        histories.append([{k: v for k, v in r.items() if k != "seconds"} for r in result.history])
    assert histories[0] == histories[1]
