"""The batch and task types shared by models, losses and the fit loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

TaskKind = Literal["binary", "multilabel", "multiclass"]


@dataclass(frozen=True)
class TaskSpec:
    """A prediction task: its name, its kind and the names of its outputs.

    ``binary`` has one label and one logit; ``multilabel`` K independent sigmoid logits; ``multiclass`` K
    softmax logits over the classes named in ``labels``.
    """

    name: str
    kind: TaskKind
    labels: tuple[str, ...]

    @property
    def num_outputs(self) -> int:
        return len(self.labels)


@dataclass
class MultiModalBatch:
    """A batch of samples that may lack a modality, without padding the missing one.

    ``ehr`` holds the time series of the samples that have EHR, ``cxr`` the images of the samples that
    have one; ``ehr_index`` / ``cxr_index`` give each row's position in the batch (0..size-1).
    """

    size: int
    ehr: Tensor | None = None  # (Be, T, 2C) values then masks
    ehr_lengths: Tensor | None = None  # (Be,) hours observed, >= 1
    ehr_index: Tensor | None = None  # (Be,) long
    cxr: Tensor | None = None  # (Bc, 1, S, S) float
    cxr_index: Tensor | None = None  # (Bc,) long

    def to(self, device: torch.device | str) -> MultiModalBatch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return MultiModalBatch(
            size=self.size,
            ehr=move(self.ehr),
            ehr_lengths=move(self.ehr_lengths),
            ehr_index=move(self.ehr_index),
            cxr=move(self.cxr),
            cxr_index=move(self.cxr_index),
        )


@dataclass
class HeadOutput:
    """Logits of one head for the samples it applies to: ``logits (n, K)``, ``index (n,)`` into the batch."""

    logits: Tensor
    index: Tensor
