"""The MIND distillation loss and the teacher ensemble targets it distils from.

MIND (Modality-INformed knowledge Distillation; Guerra-Manzanares & Shamout, TMLR 2025) trains a
multimodal student with one head per modality plus a fused head, each pulled towards the ensemble of
unimodal teachers of its modality. Only the paper's abstract is public here; the loss below is our
reconstruction (see ``/shared/DESIGN.md``, "Distillation loss") with every choice a parameter of
``MindLossConfig``, so a different recipe is a config change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mindkd.models.batch import HeadOutput, TaskKind, TaskSpec

logger = logging.getLogger(__name__)

Distance = Literal["auto", "mse", "bce", "kl"]
FusedTarget = Literal["mean", "none"]
EnsembleCombine = Literal["mean_logits", "mean_probs"]
HEADS: tuple[str, ...] = ("ehr", "cxr", "fused")
MODALITY_TARGETS: tuple[str, ...] = ("ehr", "cxr")
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
ENSEMBLE_COMBINES: tuple[str, ...] = get_args(EnsembleCombine)


class LossConfigError(ValueError):
    """A loss setting that cannot work with the task or the data it is given."""


class MindLossConfig(BaseModel):
    """Settings of ``MindLoss``; unknown keys are rejected, so a misspelt key fails at start-up.

    Attributes:
        alpha: weight of the distillation term, in [0, 1]; 0 is plain supervised training.
        temperature: softening temperature T > 0 for ``bce`` and ``kl`` (``mse`` compares raw logits).
        distance: ``mse`` (logits), ``bce`` (soft sigmoid targets; binary / multilabel), ``kl``
            (softmax; multiclass) or ``auto`` (``kl`` for multiclass tasks, ``bce`` otherwise).
        fused_target: ``mean`` (the fused head distils from the mean of the EHR and CXR targets) or
            ``none`` (the fused head has no teacher and trains on the task loss alone).
        lambda_ehr / lambda_cxr / lambda_fused: per-modality scale λ_m of the distillation term.
        weight_ehr / weight_cxr / weight_fused: weight of each head's loss in the total.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(0.5, ge=0.0, le=1.0)
    temperature: float = Field(1.0, gt=0.0)
    distance: Distance = "auto"
    fused_target: FusedTarget = "mean"
    lambda_ehr: float = Field(1.0, ge=0.0)
    lambda_cxr: float = Field(1.0, ge=0.0)
    lambda_fused: float = Field(1.0, ge=0.0)
    weight_ehr: float = Field(1.0, ge=0.0)
    weight_cxr: float = Field(1.0, ge=0.0)
    weight_fused: float = Field(1.0, ge=0.0)

    def resolved_distance(self, kind: TaskKind) -> Literal["mse", "bce", "kl"]:
        """The distance used for a task of ``kind``; raises ``LossConfigError`` for a bad combination."""
        if kind not in TASK_KINDS:
            raise LossConfigError(f"task kind must be one of {TASK_KINDS}, got {kind!r}")
        if self.distance == "auto":
            return "kl" if kind == "multiclass" else "bce"
        if self.distance == "kl" and kind != "multiclass":
            raise LossConfigError(
                f"distance='kl' (config key `distance`) compares softmax distributions and needs a "
                f"multiclass task, but the task is {kind}: use 'bce' or 'mse' (or 'auto')"
            )
        if self.distance == "bce" and kind == "multiclass":
            raise LossConfigError(
                "distance='bce' (config key `distance`) compares per-label sigmoids and does not fit a "
                "multiclass (softmax) task: use 'kl' or 'mse' (or 'auto')"
            )
        return self.distance

    def head_lambda(self, head: str) -> float:
        return float(getattr(self, f"lambda_{head}"))

    def head_weight(self, head: str) -> float:
        return float(getattr(self, f"weight_{head}"))


class MindLoss(nn.Module):
    r"""MIND loss: per-head task loss plus distillation towards the teacher ensemble of the modality.

    For each head ``h`` in the model output (``ehr``, ``cxr``, ``fused``), on the samples the head
    covers (``HeadOutput.index``), with logits ``z_h`` and teacher target ``t_h``::

        L_h   = (1 − α) · task(y, z_h) + α · λ_m(h) · D(z_h, t_h; T)
        total = Σ_h  w_h · L_h                                  (a weighted *sum* over heads)

    * ``t_h``: the ensemble target of the head's own modality (``teacher["ehr"]`` / ``teacher["cxr"]``,
      rows picked by the head's index); for the fused head, with ``fused_target="mean"``, the two
      combined by the ensemble rule ``combine`` the modality ensembles use: ``(t_ehr + t_cxr) / 2``
      for ``mean_logits``, the logit of the mean probability for ``mean_probs``. A head without a
      teacher (the fused head with ``fused_target="none"``) trains on ``task`` alone (α is 0 for
      it), so α = 1 never leaves a head untrained.
    * ``task``: BCE with logits for binary / multilabel, averaged over the *observed* label entries
      (NaN labels, e.g. uncertain findings, are masked out); cross-entropy for multiclass (labels as
      class indices ``(B,)`` or probability / one-hot rows ``(B, K)``), averaged over rows with a label.
    * ``D`` (averaged over the head's samples whose target row is finite; rows with NaN are skipped):

      - ``mse``:  mean over samples and labels of ``(z − t)²`` on raw logits (T is not used);
      - ``bce``:  ``T² · BCEWithLogits(z / T, target = σ(t / T))`` per label, i.e.
        ``T² · mean[ softplus(z/T) − σ(t/T) · z/T ]`` over samples and labels (a soft-target
        cross-entropy: its minimum is the teacher's entropy, not 0; its gradient is that of the KL);
      - ``kl``:   ``T² · KL(softmax(t / T) ‖ softmax(z / T))``, summed over classes, mean over samples.

      The ``T²`` factor keeps the gradient scale of the soft term independent of T (Hinton et al.,
      2015, "Distilling the knowledge in a neural network").
    * ``α = 0`` is plain supervised training in the same code path: no teacher targets are needed and
      the gradient is exactly that of the task loss (D is then only reported, when targets are given).
      ``α = 1`` drops the task term from the graph (it is still reported).

    ``forward`` returns named scalars: ``loss`` (the total, with graph), and detached copies of
    ``task`` = Σ_h w_h·task_h, ``kd`` = Σ_h w_h·D_h and, per head present, ``task/<h>``, ``kd/<h>``
    (0 when no target was available) and ``loss/<h>`` (= L_h). Logits are cast to float32 first, so
    the loss is safe under autocast.

    Reference: A. Guerra-Manzanares and F. E. Shamout, "MIND: Modality-Informed Knowledge Distillation
    Framework for Multimodal Clinical Prediction Tasks", TMLR 2025.
    """

    def __init__(
        self,
        task: TaskSpec | TaskKind,
        config: MindLossConfig | Mapping[str, Any] | None = None,
        combine: EnsembleCombine = "mean_logits",
    ) -> None:
        super().__init__()
        if combine not in ENSEMBLE_COMBINES:
            raise LossConfigError(
                f"combine must be one of {ENSEMBLE_COMBINES} (config key `combine`), got {combine!r}"
            )
        self.combine: EnsembleCombine = combine
        self.kind: TaskKind = task.kind if isinstance(task, TaskSpec) else task
        if config is None:
            config = MindLossConfig()
        elif not isinstance(config, MindLossConfig):
            config = MindLossConfig.model_validate(dict(config))
        self.config = config
        self.distance = config.resolved_distance(self.kind)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"kind={self.kind}, alpha={c.alpha}, distance={self.distance}, T={c.temperature}, "
            f"fused_target={c.fused_target}, combine={self.combine}"
        )

    def forward(
        self,
        outputs: Mapping[str, HeadOutput],
        labels: Tensor,
        teacher: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The total loss and every term, from head outputs, batch labels and teacher targets.

        Args:
            outputs: head name -> ``HeadOutput(logits (n, K), index (n,))``.
            labels: ``(B, K)`` float labels by batch position (NaN = unknown); for multiclass ``(B,)``
                class indices (negative or NaN = unknown) or ``(B, K)`` probability rows.
            teacher: ``{"ehr": (B, K), "cxr": (B, K)}`` ensemble logits by batch position, NaN rows
                where a sample has no target. Not needed when ``alpha == 0``.
        """
        if not outputs:
            raise ValueError("the model returned no head outputs: nothing to compute a loss on")
        unknown = sorted(set(outputs) - set(HEADS))
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}; MindLoss knows {HEADS}")
        if labels.ndim == 1 and self.kind != "multiclass":
            labels = labels[:, None]  # (B,) -> (B, 1)
        alpha = self.config.alpha
        terms: dict[str, Tensor] = {}
        total: Tensor | None = None
        task_sum: Tensor | None = None
        kd_sum: Tensor | None = None
        for head in HEADS:
            if head not in outputs:
                continue
            out = outputs[head]
            z = out.logits.float()  # (n, K)
            y = labels.index_select(0, out.index)
            self._check_shapes(head, z, y)
            target = self._head_target(head, out.index, teacher)  # (n, K) or None
            head_alpha = alpha if target is not None else 0.0
            task_h = self._task_loss(z if head_alpha < 1.0 else z.detach(), y)
            if target is None:
                kd_h = z.new_zeros(())
            else:
                kd_h = self._distance(z if head_alpha > 0.0 else z.detach(), target)
            loss_h = self._combine(task_h, kd_h, head_alpha, self.config.head_lambda(head))
            weight = self.config.head_weight(head)
            total = weight * loss_h if total is None else total + weight * loss_h
            task_sum = weight * task_h.detach() + (0.0 if task_sum is None else task_sum)
            kd_sum = weight * kd_h.detach() + (0.0 if kd_sum is None else kd_sum)
            terms[f"task/{head}"] = task_h.detach()
            terms[f"kd/{head}"] = kd_h.detach()
            terms[f"loss/{head}"] = loss_h.detach()
        assert total is not None and task_sum is not None and kd_sum is not None
        return {"loss": total, "task": task_sum, "kd": kd_sum, **terms}

    @staticmethod
    def _combine(task: Tensor, kd: Tensor, alpha: float, lam: float) -> Tensor:
        """``(1 − α)·task + α·λ·kd``, leaving out a term whose factor is 0 (no gradient through it)."""
        if alpha <= 0.0:
            return task
        if alpha >= 1.0:
            return lam * kd
        return (1.0 - alpha) * task + alpha * lam * kd

    def _check_shapes(self, head: str, z: Tensor, y: Tensor) -> None:
        if z.ndim != 2:
            raise ValueError(
                f"head {head!r} returned logits of shape {tuple(z.shape)}; expected (n, K)"
            )
        if self.kind == "multiclass" and y.ndim == 1:
            return
        if y.shape != z.shape:
            raise ValueError(
                f"head {head!r}: logits {tuple(z.shape)} and labels {tuple(y.shape)} disagree"
            )

    def _head_target(
        self, head: str, index: Tensor, teacher: Mapping[str, Tensor] | None
    ) -> Tensor | None:
        """The teacher target rows ``(n, K)`` of ``head``'s samples, or None when it has no teacher."""
        if head == "fused" and self.config.fused_target == "none":
            return None
        needed = MODALITY_TARGETS if head == "fused" else (head,)
        missing = [m for m in needed if teacher is None or m not in teacher]
        if missing:
            if self.config.alpha > 0.0:
                raise LossConfigError(
                    f"alpha={self.config.alpha} (config key `alpha`) needs teacher targets for head "
                    f"{head!r}, but none were given for {missing}: pass teacher={{'ehr': ..., "
                    "'cxr': ...}, set alpha to 0, or for the fused head set fused_target='none'"
                )
            return None
        assert teacher is not None
        rows = [teacher[m].index_select(0, index).float() for m in needed]  # each (n, K)
        if len(rows) == 1:
            return rows[0]
        if self.combine == "mean_logits":
            return (rows[0] + rows[1]) / 2.0
        return _mean_probability_logits(torch.stack(rows), self.kind)

    def _task_loss(self, z: Tensor, y: Tensor) -> Tensor:
        if self.kind == "multiclass":
            if y.ndim == 1:  # class indices
                valid = torch.isfinite(y) & (y >= 0)
                probs = F.one_hot(torch.where(valid, y, 0).long(), z.shape[1]).to(z.dtype)
            else:  # probability / one-hot rows
                valid = torch.isfinite(y).all(dim=1)
                probs = torch.where(valid[:, None], y.to(z.dtype), 0.0)
            ce = -(probs * F.log_softmax(z, dim=1)).sum(dim=1)  # (n,)
            return (ce * valid).sum() / valid.sum().clamp_min(1)
        observed = torch.isfinite(y)
        bce = F.binary_cross_entropy_with_logits(
            z, torch.where(observed, y.to(z.dtype), 0.0), reduction="none"
        )  # (n, K)
        return (bce * observed).sum() / observed.sum().clamp_min(1)

    def _distance(self, z: Tensor, t: Tensor) -> Tensor:
        """D(z, t; T) averaged over the rows whose target is finite; masked, so no host sync."""
        valid = torch.isfinite(t).all(dim=1)  # (n,)
        t = torch.where(valid[:, None], t, 0.0)  # NaN rows -> 0, then masked out below
        temp = self.config.temperature
        if self.distance == "mse":
            per_row = (z - t).pow(2).mean(dim=1)  # (n,)
        elif self.distance == "bce":
            soft = torch.sigmoid(t / temp)
            per_row = F.binary_cross_entropy_with_logits(z / temp, soft, reduction="none").mean(
                dim=1
            )
            per_row = per_row * temp**2
        else:
            log_p_student = F.log_softmax(z / temp, dim=1)
            log_p_teacher = F.log_softmax(t / temp, dim=1)
            kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="none")  # (n, K)
            per_row = kl.sum(dim=1) * temp**2
        return (per_row * valid).sum() / valid.sum().clamp_min(1)


def _mean_probability_logits(logits: Tensor, kind: TaskKind) -> Tensor:
    """``ensemble_targets(..., "mean_probs")`` in torch for ``(M, n, K)`` logits: per label
    ``log(p̄) − log(1 − p̄)``; for multiclass ``log(mean_m softmax(z_m))``. NaN stays NaN."""
    members = math.log(logits.shape[0])
    if kind == "multiclass":
        return torch.logsumexp(F.log_softmax(logits, dim=2), dim=0) - members
    return torch.logsumexp(F.logsigmoid(logits), dim=0) - torch.logsumexp(
        F.logsigmoid(-logits), dim=0
    )


def ensemble_targets(
    member_logits: np.ndarray,
    combine: EnsembleCombine = "mean_logits",
    kind: TaskKind = "binary",
) -> np.ndarray:
    """Combine the logits of M teacher members ``(M, N, K)`` into one target per sample ``(N, K)``.

    ``mean_logits``: the mean of the members' logits. ``mean_probs``: the logit of the mean of their
    probabilities — per label ``logit(mean_m σ(z_m))`` for binary / multilabel tasks; for multiclass
    ``log(mean_m softmax(z_m))`` (log-probabilities, whose softmax is the mean distribution). Both are
    computed in log space in float64, so extreme logits do not overflow. A NaN member logit (a member
    that did not see the sample) makes the sample's target NaN. Returns float32.
    """
    if combine not in ENSEMBLE_COMBINES:
        raise LossConfigError(
            f"combine must be one of {ENSEMBLE_COMBINES} (config key `combine`), got {combine!r}"
        )
    if kind not in TASK_KINDS:
        raise LossConfigError(f"kind must be one of {TASK_KINDS}, got {kind!r}")
    z = np.asarray(member_logits, dtype=np.float64)
    if z.ndim != 3 or z.shape[0] == 0:
        raise ValueError(f"member_logits must be (M, N, K) with M >= 1, got shape {z.shape}")
    if combine == "mean_logits":
        out = z.mean(axis=0)
    elif kind == "multiclass":
        log_probs = z - _logsumexp(z, axis=2)[..., None]  # (M, N, K)
        out = _logsumexp(log_probs, axis=0) - np.log(z.shape[0])
    else:
        with np.errstate(invalid="ignore"):  # NaN logits stay NaN
            log_p = -np.logaddexp(0.0, -z)  # log σ(z)
            log_q = -np.logaddexp(0.0, z)  # log (1 − σ(z))
        out = _logsumexp(log_p, axis=0) - _logsumexp(
            log_q, axis=0
        )  # log(p̄) − log(1 − p̄); M cancels
    return out.astype(np.float32)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """``log Σ exp(x)`` along ``axis`` (NaN propagates; all −inf gives −inf)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        peak = np.max(x, axis=axis, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0.0)
        return np.log(np.sum(np.exp(x - peak), axis=axis)) + np.squeeze(peak, axis=axis)
