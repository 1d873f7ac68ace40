"""MindLoss: every term against hand-computed values, the α limits, masking, head routing, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from mindkd.models import HeadOutput, TaskSpec
from mindkd.training import LossConfigError, MindLoss, MindLossConfig, ensemble_targets

NAN = float("nan")

# The 2-sample binary example used throughout: logits z, teacher logits t, labels y, T = 2.
Z = [[1.0], [-2.0]]
T_EHR = [[3.0], [0.0]]
Y = [[1.0], [0.0]]
# task = mean(softplus(z) − y·z) = (softplus(−1) + softplus(−2)) / 2
TASK_BCE = 0.22009484928059764
# mse = ((1 − 3)² + (−2 − 0)²) / 2
KD_MSE = 4.0
# bce = T² · mean(softplus(z/T) − σ(t/T)·z/T) = 4 · ((0.97408 − 0.81757·0.5) + (0.31326 + 0.5·1)) / 2
KD_BCE_T2 = 2.7571028672030153


def ehr_only(
    z: list[list[float]], requires_grad: bool = False
) -> tuple[dict[str, HeadOutput], torch.Tensor]:
    logits = torch.tensor(z, requires_grad=requires_grad)
    return {"ehr": HeadOutput(logits, torch.arange(len(z)))}, logits


def loss_of(kind: str = "binary", **config: object) -> MindLoss:
    return MindLoss(kind, MindLossConfig(**config))  # type: ignore[arg-type]


@pytest.mark.parametrize(("distance", "expected"), [("mse", KD_MSE), ("bce", KD_BCE_T2)])
def test_binary_terms_match_hand_values(distance: str, expected: float) -> None:
    outputs, _ = ehr_only(Z)
    terms = loss_of(alpha=0.25, temperature=2.0, distance=distance, lambda_ehr=2.0)(
        outputs, torch.tensor(Y), {"ehr": torch.tensor(T_EHR)}
    )
    assert terms["task/ehr"].item() == pytest.approx(TASK_BCE, rel=1e-6)
    assert terms["kd/ehr"].item() == pytest.approx(expected, rel=1e-6)
    # L = (1 − α)·task + α·λ·D with α = 0.25, λ = 2
    combined = 0.75 * TASK_BCE + 0.25 * 2.0 * expected
    assert terms["loss/ehr"].item() == pytest.approx(combined, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(combined, rel=1e-6)
    assert set(terms) == {"loss", "task", "kd", "task/ehr", "kd/ehr", "loss/ehr"}


def test_kl_times_t_squared_and_cross_entropy_match_hand_values() -> None:
    z = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    t = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # classes 0 and 2, one-hot
    loss = MindLoss(
        TaskSpec("m", "multiclass", ("a", "b", "c")), MindLossConfig(alpha=0.5, temperature=2.0)
    )
    assert loss.distance == "kl"  # "auto" resolves to kl for multiclass
    terms = loss({"cxr": HeadOutput(z, torch.arange(2))}, labels, {"cxr": t})
    # T² · mean_i Σ_k softmax(t_i/T)_k · (log softmax(t_i/T)_k − log softmax(z_i/T)_k)
    assert terms["kd/cxr"].item() == pytest.approx(0.4635697685863096, rel=1e-6)
    # CE = −(log softmax(z_0)_0 + log softmax(z_1)_2) / 2
    assert terms["task/cxr"].item() == pytest.approx(1.3235753653331326, rel=1e-6)
    by_index = loss({"cxr": HeadOutput(z, torch.arange(2))}, torch.tensor([0.0, 2.0]), {"cxr": t})
    assert by_index["task/cxr"].item() == pytest.approx(1.3235753653331326, rel=1e-6)


def test_alpha_zero_is_plain_bce_training_without_teacher() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen)
    y = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0], [0.0]])
    reference_model = torch.nn.Linear(3, 1)
    model = torch.nn.Linear(3, 1)
    model.load_state_dict(reference_model.state_dict())

    F.binary_cross_entropy_with_logits(reference_model(x), y).backward()
    terms = loss_of(alpha=0.0)({"fused": HeadOutput(model(x), torch.arange(6))}, y, None)
    terms["loss"].backward()

    assert terms["kd/fused"].item() == 0.0
    for p, q in zip(model.parameters(), reference_model.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=1e-7)


def test_alpha_zero_gradient_ignores_teacher_but_reports_kd() -> None:
    outputs, logits = ehr_only(Z, requires_grad=True)
    terms = loss_of(alpha=0.0, distance="mse")(
        outputs, torch.tensor(Y), {"ehr": torch.tensor(T_EHR)}
    )
    terms["loss"].backward()
    assert terms["kd/ehr"].item() == pytest.approx(KD_MSE)
    expected = (torch.sigmoid(torch.tensor(Z)) - torch.tensor(Y)) / 2  # d mean-BCE / dz
    torch.testing.assert_close(logits.grad, expected)


def test_alpha_one_has_no_task_term() -> None:
    outputs, logits = ehr_only(Z, requires_grad=True)
    terms = loss_of(alpha=1.0, distance="mse", lambda_ehr=3.0)(
        outputs, torch.tensor(Y), {"ehr": torch.tensor(T_EHR)}
    )
    terms["loss"].backward()
    assert terms["loss"].item() == pytest.approx(3.0 * KD_MSE)
    assert terms["task/ehr"].item() == pytest.approx(TASK_BCE, rel=1e-6)  # reported, not trained
    # d(3 · mean (z − t)²)/dz = 3 · 2 (z − t) / 2 = 3 (z − t)
    torch.testing.assert_close(logits.grad, torch.tensor([[-6.0], [-6.0]]))


def test_nan_labels_are_masked_out() -> None:
    z = torch.tensor([[1.0, 5.0], [-3.0, -2.0]], requires_grad=True)
    y = torch.tensor([[1.0, NAN], [NAN, 0.0]])
    terms = loss_of(alpha=0.0)({"ehr": HeadOutput(z, torch.arange(2))}, y, None)
    terms["loss"].backward()
    # observed entries: (z=1, y=1) -> softplus(−1); (z=−2, y=0) -> softplus(−2); mean of the two
    assert terms["task/ehr"].item() == pytest.approx(TASK_BCE, rel=1e-6)
    assert z.grad is not None
    assert z.grad[0, 1].item() == 0.0 and z.grad[1, 0].item() == 0.0
    all_unknown = loss_of(alpha=0.0)(
        {"ehr": HeadOutput(z, torch.arange(2))}, torch.full((2, 2), NAN), None
    )
    assert all_unknown["loss"].item() == 0.0


def test_heads_use_only_their_samples_and_fused_target_mean_vs_none() -> None:
    # batch of 4: 0 paired, 1 EHR only, 2 CXR only, 3 paired
    outputs = {
        "ehr": HeadOutput(torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([0, 1, 3])),
        "cxr": HeadOutput(torch.tensor([[0.0], [0.0], [-1.0]]), torch.tensor([0, 2, 3])),
        "fused": HeadOutput(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 3])),
    }
    labels = torch.tensor([[1.0], [0.0], [NAN], [1.0]])
    teacher = {
        "ehr": torch.tensor([[2.0], [1.0], [NAN], [4.0]]),  # NaN where the sample has no EHR
        "cxr": torch.tensor([[4.0], [NAN], [3.0], [0.0]]),
    }
    mean = loss_of(alpha=0.5, distance="mse", fused_target="mean", weight_cxr=2.0)(
        outputs, labels, teacher
    )
    # ehr rows 0,1,3: ((0−2)² + (1−1)² + (2−4)²) / 3
    assert mean["kd/ehr"].item() == pytest.approx(8.0 / 3.0)
    # cxr rows 0,2,3: ((0−4)² + (0−3)² + (−1−0)²) / 3
    assert mean["kd/cxr"].item() == pytest.approx(26.0 / 3.0)
    # fused rows 0,3, target (t_ehr + t_cxr)/2 = 3 and 2: ((0−3)² + (1−2)²) / 2
    assert mean["kd/fused"].item() == pytest.approx(5.0)
    # cxr task: labels of rows 0, 2 (NaN, masked), 3 -> (softplus(−0) + softplus(1)) / 2
    assert mean["task/cxr"].item() == pytest.approx(
        (math.log(2) + math.log1p(math.e)) / 2, rel=1e-6
    )
    expected_total = sum(
        w * mean[f"loss/{h}"].item() for h, w in (("ehr", 1.0), ("cxr", 2.0), ("fused", 1.0))
    )
    assert mean["loss"].item() == pytest.approx(expected_total, rel=1e-6)

    none = loss_of(alpha=0.5, distance="mse", fused_target="none")(outputs, labels, teacher)
    assert none["kd/fused"].item() == 0.0
    # a head without teacher trains on its task loss alone (not (1 − α)·task)
    assert none["loss/fused"].item() == pytest.approx(none["task/fused"].item())
    assert none["kd/ehr"].item() == pytest.approx(8.0 / 3.0)


def test_teacher_rows_with_nan_are_skipped_in_kd() -> None:
    outputs, _ = ehr_only([[1.0], [-2.0], [7.0]])
    teacher = {"ehr": torch.tensor([[3.0], [0.0], [NAN]])}
    terms = loss_of(alpha=0.5, distance="mse")(
        outputs, torch.tensor([[1.0], [0.0], [1.0]]), teacher
    )
    assert terms["kd/ehr"].item() == pytest.approx(KD_MSE)
    assert math.isfinite(terms["loss"].item())


def test_bad_configurations_raise_with_the_config_key() -> None:
    with pytest.raises(LossConfigError, match=r"distance='kl' \(config key `distance`\).*binary"):
        loss_of("binary", distance="kl")
    with pytest.raises(LossConfigError, match=r"distance='bce'.*multiclass"):
        loss_of("multiclass", distance="bce")
    with pytest.raises(ValidationError, match="alpha"):
        MindLossConfig(alpha=1.5)
    with pytest.raises(ValidationError, match="temperature"):
        MindLossConfig(temperature=0.0)
    with pytest.raises(ValidationError, match="temprature"):
        MindLossConfig.model_validate({"temprature": 2.0})
    with pytest.raises(ValidationError, match="distance"):
        MindLossConfig.model_validate({"distance": "cosine"})
    outputs, _ = ehr_only(Z)
    with pytest.raises(LossConfigError, match=r"alpha=0.5 \(config key `alpha`\) needs teacher"):
        loss_of(alpha=0.5)(outputs, torch.tensor(Y), None)
    with pytest.raises(ValueError, match="unknown head"):
        loss_of(alpha=0.0)({"text": outputs["ehr"]}, torch.tensor(Y), None)


def test_mapping_config_is_validated() -> None:
    assert MindLoss("binary", {"alpha": 0.3}).config.alpha == 0.3
    with pytest.raises(ValidationError, match="lambda_eh"):
        MindLoss("binary", {"lambda_eh": 1.0})


def test_ensemble_targets_on_hand_values() -> None:
    members = np.array([[[0.0]], [[2.0]]])  # (M=2, N=1, K=1)
    assert ensemble_targets(members, "mean_logits", "binary")[0, 0] == pytest.approx(1.0)
    # mean of σ(0) = 0.5 and σ(2) = 0.880797 is 0.690399; its logit is log(0.690399 / 0.309601)
    assert ensemble_targets(members, "mean_probs", "binary")[0, 0] == pytest.approx(
        0.8019831628540132, rel=1e-6
    )

    multi = np.array([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])  # softmax: (.5, .5) and (.75, .25)
    out = ensemble_targets(multi, "mean_probs", "multiclass")
    np.testing.assert_allclose(np.exp(out[0]), [0.625, 0.375], rtol=1e-6)  # log of the mean probs
    np.testing.assert_allclose(
        ensemble_targets(multi, "mean_logits", "multiclass")[0], [math.log(3) / 2, 0.0], rtol=1e-6
    )


def test_ensemble_targets_extremes_nan_and_errors() -> None:
    extreme = np.array([[[1000.0, -1000.0]], [[1000.0, -1000.0]]])
    np.testing.assert_allclose(
        ensemble_targets(extreme, "mean_probs", "multilabel")[0], [1000.0, -1000.0]
    )
    with_nan = np.array([[[1.0], [NAN]], [[3.0], [NAN]]])
    out = ensemble_targets(with_nan, "mean_probs", "binary")
    assert np.isfinite(out[0, 0]) and np.isnan(out[1, 0])
    assert out.dtype == np.float32
    with pytest.raises(LossConfigError, match="config key `combine`"):
        ensemble_targets(extreme, "median", "binary")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(M, N, K\)"):
        ensemble_targets(np.zeros((2, 3)), "mean_logits", "binary")


@pytest.mark.parametrize(
    ("kind", "labels"),
    [("binary", ("y",)), ("multilabel", ("a", "b")), ("multiclass", ("a", "b", "c"))],
)
def test_the_fused_target_follows_the_ensemble_rule(kind: str, labels: tuple[str, ...]) -> None:
    """With ``combine: mean_probs`` the fused head distils from the logit of the mean probability
    of the two modality ensembles (as ``ensemble_targets`` combines members), not the mean logit."""
    gen = torch.Generator().manual_seed(1)
    t_ehr, t_cxr = (3.0 * torch.randn(4, len(labels), generator=gen) for _ in range(2))
    expected = ensemble_targets(np.stack([t_ehr.numpy(), t_cxr.numpy()]), "mean_probs", kind)
    config = MindLossConfig(alpha=1.0, distance="mse")
    fused = {"fused": HeadOutput(torch.tensor(expected), torch.arange(4))}
    teacher = {"ehr": t_ehr, "cxr": t_cxr}
    y = torch.zeros(4, len(labels))
    probs = MindLoss(TaskSpec("t", kind, labels), config, combine="mean_probs")
    assert probs(fused, y, teacher)["kd/fused"].item() == pytest.approx(0.0, abs=1e-10)
    logits = MindLoss(TaskSpec("t", kind, labels), config)  # mean_logits: the plain mean
    mean = {"fused": HeadOutput((t_ehr + t_cxr) / 2.0, torch.arange(4))}
    assert logits(mean, y, teacher)["kd/fused"].item() == 0.0
    assert logits(fused, y, teacher)["kd/fused"].item() > 0.01
