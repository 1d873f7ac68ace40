"""MCKD: meta-learned modality importance and pairwise cross-modal distillation inside the student.

Meta-learned Cross-modal Knowledge Distillation (Hu Wang et al., "Meta-Learned Modality-Weighted
Knowledge Distillation for Robust Multi-Modal Learning with Missing Data", arXiv 2405.07155; code
``billhhh/MCKD``, successor of LCKD, MICCAI 2023) learns one importance weight per modality and
distils from the more important modality into the less important one, so the model keeps accuracy
when the influential modality is missing. It needs no external teacher: the student's own heads
teach each other. Here it is a distillation option of the student (variant ``mckd``): the same
network, the same ``mindkd.training.fit`` loop, a different loss plus a step hook.

What follows the authors' code (``MCKD/DualNet.py``, ``train.py``; the paper's method section was
not reachable here):

* importance ``w = softmax(θ)``, one ``θ_m`` per modality, trained only by the meta step (Adam, lr
  ``meta_lr``, weight decay ``meta_weight_decay``); the network never gets gradient from it;
* the meta step runs every ``meta_every`` training steps on held-out batches taken from the
  *training* split (a subject-level slice, ``meta_fraction``; the authors' ``metaVal`` list is
  also a part of their training set): a forward pass with every modality's features scaled by its
  weight before the fusion, the task loss, one step of ``θ``;
* the pairwise term, on the samples that have both modalities, in both directions:
  ``L_KD = Σ_{i≠j} (w_i / w_j) · D(z_j, sg(z_i))`` with the ratio detached, so a more important
  modality teaches strongly and a less important one weakly; ``D`` is L1 (the authors' choice);
* total ``L = task + kd_weight · L_KD`` with ``kd_weight = 0.1``.

Where this departs, and why:

* the distilled quantities are the unimodal heads' **logits**, not encoder features: the authors
  share one encoder across modalities, so their features live in one space; our EHR and CXR
  encoders differ in kind and width. For multiclass tasks the logits are centred per row first
  (softmax ignores a shift);
* ``θ`` starts at 0 (equal weights) rather than ``rand``; and the meta pass scales features by
  ``M · w_m`` (M modalities), so equal weights leave the fused head's input as it is in training;
* the meta pass runs in eval mode (no dropout; batch-norm statistics untouched) so it changes
  nothing but ``θ``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mindkd.models.batch import HeadOutput, TaskKind, TaskSpec
from mindkd.models.student import paired_rows
from mindkd.training.device import to_device
from mindkd.training.losses import EnsembleCombine, MindLoss, MindLossConfig

MODALITIES: tuple[str, str] = ("ehr", "cxr")
PAIRS: tuple[tuple[str, str], ...] = (("ehr", "cxr"), ("cxr", "ehr"))  # (teacher, student)


class MckdConfig(BaseModel):
    """Settings of MCKD (``<task>.distill.mckd``); unknown keys are rejected.

    Attributes:
        kd_weight: weight of the pairwise cross-modal term in the total (the authors' 0.1).
        distance: ``l1`` (the authors') or ``mse``, between the student head's and the teaching
            head's logits.
        meta_lr, meta_weight_decay: Adam settings of the importance logits θ.
        meta_every: training steps between two meta steps.
        meta_batches: held-out batches per meta step (one θ update each).
        meta_fraction: share of the training subjects held out for the meta steps (never trained on).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kd_weight: float = Field(0.1, ge=0.0)
    distance: Literal["l1", "mse"] = "l1"
    meta_lr: float = Field(1e-2, gt=0.0)
    meta_weight_decay: float = Field(5e-4, ge=0.0)
    meta_every: int = Field(1, ge=1)
    meta_batches: int = Field(1, ge=1)
    meta_fraction: float = Field(0.1, gt=0.0, lt=0.5)


class MckdLoss(nn.Module):
    """The task loss of every head plus MCKD's importance-weighted pairwise distillation.

    ``forward(outputs, labels, teacher)`` has ``MindLoss``'s signature and returns its terms
    (``loss``, ``task``, ``task/<head>``, ...) with ``kd`` = the pairwise term, ``kd/<s>_from_<t>``
    per direction and ``importance/<modality>`` (the current weights), so the fit loop averages the
    weights over each epoch into ``train/importance/<modality>``. External teacher targets are
    ignored: MCKD's teachers are the student's own heads.
    """

    def __init__(
        self,
        task: TaskSpec | TaskKind,
        config: MckdConfig,
        task_loss: MindLossConfig | None = None,
        combine: EnsembleCombine = "mean_logits",
    ) -> None:
        super().__init__()
        task_loss = (task_loss or MindLossConfig()).model_copy(update={"alpha": 0.0})
        self.task = MindLoss(task, task_loss, combine)
        self.kind: TaskKind = self.task.kind
        self.config = config
        self.importance_logits = nn.Parameter(torch.zeros(len(MODALITIES)))

    def extra_repr(self) -> str:
        c = self.config
        return f"kind={self.kind}, kd_weight={c.kd_weight}, distance={c.distance}"

    def importance(self) -> Tensor:
        """``softmax(θ)`` in ``MODALITIES`` order, with graph."""
        return torch.softmax(self.importance_logits, dim=0)

    def importance_values(self) -> dict[str, float]:
        weights = self.importance().detach().cpu().tolist()
        return dict(zip(MODALITIES, weights, strict=True))

    def forward(
        self,
        outputs: Mapping[str, HeadOutput],
        labels: Tensor,
        teacher: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        terms = dict(self.task(outputs, labels, None))
        weights = self.importance().detach().to(terms["loss"].device)
        kd = terms["loss"].new_zeros(())
        for teacher_m, student_m in PAIRS:
            term = self._pair(outputs, teacher_m, student_m, labels.shape[0])
            ratio = weights[MODALITIES.index(teacher_m)] / weights[MODALITIES.index(student_m)]
            kd = kd + ratio * term
            terms[f"kd/{student_m}_from_{teacher_m}"] = term.detach()
        terms["loss"] = terms["loss"] + self.config.kd_weight * kd
        terms["kd"] = kd.detach()
        for i, modality in enumerate(MODALITIES):
            terms[f"importance/{modality}"] = weights[i]
        return terms

    def _pair(
        self, outputs: Mapping[str, HeadOutput], teacher_m: str, student_m: str, size: int
    ) -> Tensor:
        """``D(z_student, sg(z_teacher))`` averaged over the samples both heads cover (0 if none)."""
        if teacher_m not in outputs or student_m not in outputs:
            any_head = next(iter(outputs.values()))
            return any_head.logits.new_zeros((), dtype=torch.float32)
        t_out, s_out = outputs[teacher_m], outputs[student_m]
        s_rows, t_rows = paired_rows(s_out.index, t_out.index, size)
        if s_rows.numel() == 0:
            return s_out.logits.new_zeros((), dtype=torch.float32)
        z = s_out.logits.float().index_select(0, s_rows)
        t = t_out.logits.float().index_select(0, t_rows).detach()
        if self.kind == "multiclass":  # softmax ignores a shift: compare centred logits
            z = z - z.mean(dim=1, keepdim=True)
            t = t - t.mean(dim=1, keepdim=True)
        if self.config.distance == "l1":
            return F.l1_loss(z, t)
        return F.mse_loss(z, t)


class MetaStep:
    """The step hook of ``fit`` that trains MCKD's importance weights on held-out batches.

    Called as ``hook(model, step)`` after every optimiser step; every ``meta_every`` steps it draws
    ``meta_batches`` batches from ``loader`` (cycled), runs the model in eval mode with each
    modality's features scaled by ``M · w_m``, and takes one Adam step of ``θ`` on the task loss.
    The network's own parameters and buffers are left as they were.
    """

    def __init__(self, loss: MckdLoss, loader: Iterable[Any]) -> None:
        self.loss = loss
        self.loader = loader
        self.config = loss.config
        self._batches: Iterator[Any] | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._passes = 0
        self.updates = 0

    def _next_batch(self) -> Any:
        if self._batches is not None:
            batch = next(self._batches, None)
            if batch is not None:
                return batch
        sampler = getattr(self.loader, "sampler", None)  # each pass its own seeded order
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self._passes)
        self._passes += 1
        self._batches = iter(self.loader)
        return next(self._batches)

    def __call__(self, model: nn.Module, step: int) -> None:
        if step % self.config.meta_every != 0:
            return
        theta = self.loss.importance_logits
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(
                [theta], lr=self.config.meta_lr, weight_decay=self.config.meta_weight_decay
            )
        device = theta.device
        was_training = model.training
        model.eval()
        try:
            for _ in range(self.config.meta_batches):
                cpu_batch, cpu_targets = self._next_batch()
                batch, targets = cpu_batch.to(device), to_device(cpu_targets, device)
                weights = self.loss.importance()
                scale = {m: len(MODALITIES) * weights[i] for i, m in enumerate(MODALITIES)}
                with torch.enable_grad():
                    outputs = model(batch, modality_scale=scale)
                    meta_loss = self.loss.task(outputs, targets["labels"], None)["loss"]
                if not meta_loss.requires_grad or "fused" not in outputs:
                    continue  # no paired sample in the batch: the weights do not act on it
                (grad,) = torch.autograd.grad(meta_loss, [theta])
                self._optimizer.zero_grad(set_to_none=True)
                theta.grad = grad
                self._optimizer.step()
                self.updates += 1
        finally:
            model.train(was_training)
