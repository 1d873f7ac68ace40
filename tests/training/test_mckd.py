"""MCKD (``mindkd.training.mckd``): the pairwise term, the meta-learned importance, the held-out split.

Break-on-purpose checks run while writing these tests (each went red, then was restored):
* the meta step stepping ``θ`` up its gradient (``theta.grad = -grad``): both importance tests fail;
* the KD ratio inverted (``w_j / w_i``): ``test_the_more_important_modality_teaches_harder`` fails;
* the teaching logits not detached: ``test_the_teaching_head_gets_no_gradient`` fails;
* ``meta_split`` drawing stays instead of subjects: ``test_meta_split_holds_out_whole_subjects``
  fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from training_helpers import TinyStudent, state_equal, synthetic_dataset

from mindkd.models import HeadOutput
from mindkd.training import RoutedEvaluator, fit_datasets
from mindkd.training.data import make_loader
from mindkd.training.fit import LoaderFitConfig
from mindkd.training.mckd import MckdConfig, MckdLoss, MetaStep
from mindkd.training.students import meta_split


def _outputs(z_e: list[float], z_c: list[float]) -> dict[str, HeadOutput]:
    n = len(z_e)
    index = torch.arange(n)
    return {
        "ehr": HeadOutput(torch.tensor([[v] for v in z_e], requires_grad=True), index),
        "cxr": HeadOutput(torch.tensor([[v] for v in z_c], requires_grad=True), index),
    }


def test_pairwise_term_is_the_ratio_weighted_l1_of_the_heads() -> None:
    loss = MckdLoss("binary", MckdConfig(kd_weight=0.5))
    with torch.no_grad():
        loss.importance_logits.copy_(torch.tensor([np.log(3.0), 0.0]))  # w = (0.75, 0.25)
    outputs = _outputs([1.0, -1.0], [0.0, 1.0])
    terms = loss(outputs, torch.tensor([1.0, 0.0]))
    l1 = (1.0 + 2.0) / 2
    assert terms["kd/cxr_from_ehr"].item() == pytest.approx(l1)
    assert terms["kd"].item() == pytest.approx(3.0 * l1 + l1 / 3.0, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["task"].item() + 0.5 * terms["kd"].item())
    assert terms["importance/ehr"].item() == pytest.approx(0.75)


def test_the_more_important_modality_teaches_harder() -> None:
    loss = MckdLoss("binary", MckdConfig(kd_weight=1.0))
    with torch.no_grad():
        loss.importance_logits.copy_(torch.tensor([2.0, 0.0]))  # EHR more important
    outputs = _outputs([2.0, -2.0], [0.0, 0.0])
    loss(outputs, torch.tensor([float("nan"), float("nan")]))["loss"].backward()
    pull_on_cxr = outputs["cxr"].logits.grad.abs().sum()
    pull_on_ehr = outputs["ehr"].logits.grad.abs().sum()
    assert pull_on_cxr > 5 * pull_on_ehr


def test_the_teaching_head_gets_no_gradient() -> None:
    loss = MckdLoss("binary", MckdConfig(kd_weight=1.0))
    outputs = _outputs([2.0, -2.0], [0.0, 0.0])
    nolabel = torch.tensor([float("nan"), float("nan")])
    loss(outputs, nolabel)["loss"].backward()
    # each head is pulled only as a student (towards the other), by the L1 subgradient 1/n
    assert torch.allclose(outputs["ehr"].logits.grad.abs(), torch.full((2, 1), 0.5))
    assert loss.importance_logits.grad is None  # θ learns only in the meta step


def test_unpaired_batches_add_no_pairwise_term() -> None:
    loss = MckdLoss("binary", MckdConfig())
    outputs = {
        "ehr": HeadOutput(torch.tensor([[1.0]]), torch.tensor([0])),
        "cxr": HeadOutput(torch.tensor([[3.0]]), torch.tensor([1])),
    }
    assert loss(outputs, torch.tensor([1.0, 0.0]))["kd"].item() == 0.0


def test_multiclass_compares_centred_logits() -> None:
    loss = MckdLoss("multiclass", MckdConfig())
    index = torch.arange(1)
    outputs = {
        "ehr": HeadOutput(torch.tensor([[1.0, 2.0, 3.0]]), index),
        "cxr": HeadOutput(torch.tensor([[11.0, 12.0, 13.0]]), index),  # the same softmax
    }
    assert loss(outputs, torch.tensor([2]))["kd"].item() == pytest.approx(0.0)


def _fit_importance(signal: str) -> dict[str, float]:
    torch.manual_seed(0)
    train = synthetic_dataset(240, seed=1, teacher=False, signal=signal)
    val = synthetic_dataset(60, seed=2, teacher=False, signal=signal)
    meta = synthetic_dataset(60, seed=3, teacher=False, signal=signal)
    model = TinyStudent()
    loss = MckdLoss("binary", MckdConfig(meta_every=1, meta_lr=0.05))
    hook = MetaStep(loss, make_loader(meta, 32, shuffle=True, seed=1))
    cfg = LoaderFitConfig(epochs=6, batch_size=32, lr=0.02, device="cpu", progress=False)
    result = fit_datasets(model, loss, train, val, RoutedEvaluator("binary"), cfg, on_step=hook)
    assert hook.updates > 20
    assert "train/importance/ehr" in result.history[-1]  # logged per epoch
    return loss.importance_values()


def test_the_meta_step_raises_the_informative_modality_ehr() -> None:
    weights = _fit_importance("ehr")
    assert weights["ehr"] > 0.6, weights


def test_the_meta_step_raises_the_informative_modality_cxr() -> None:
    weights = _fit_importance("cxr")
    assert weights["cxr"] > 0.6, weights


def test_the_meta_step_changes_nothing_but_the_importance() -> None:
    model = TinyStudent(dropout=0.5)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = MckdLoss("binary", MckdConfig(meta_every=1))
    meta = synthetic_dataset(30, seed=3, teacher=False)
    hook = MetaStep(loss, make_loader(meta, 8, shuffle=True, seed=1))
    theta = loss.importance_logits.detach().clone()
    for step in range(1, 4):
        hook(model, step)
    assert state_equal(before, model.state_dict())
    assert all(p.grad is None for p in model.parameters())
    assert model.training
    assert not torch.equal(theta, loss.importance_logits.detach())


def test_meta_every_spaces_the_meta_steps() -> None:
    loss = MckdLoss("binary", MckdConfig(meta_every=5))
    hook = MetaStep(loss, make_loader(synthetic_dataset(30, seed=3), 8, shuffle=True, seed=1))
    for step in range(1, 11):
        hook(TinyStudent(), step)
    assert hook.updates == 2


def test_meta_split_holds_out_whole_subjects() -> None:
    samples = pd.DataFrame({"stay_id": np.arange(200), "subject_id": np.repeat(np.arange(50), 4)})
    train, meta = meta_split(samples, 0.2, seed=0)
    assert set(train["subject_id"]).isdisjoint(meta["subject_id"])
    assert meta["subject_id"].nunique() == 10
    assert len(train) + len(meta) == 200
    again, _ = meta_split(samples, 0.2, seed=0)
    assert again.equals(train)


def test_meta_split_refuses_an_empty_part() -> None:
    samples = pd.DataFrame({"stay_id": [1, 2], "subject_id": [7, 7]})
    with pytest.raises(ValueError, match="both must be non-empty"):
        meta_split(samples, 0.1, seed=0)
