"""Tiny inputs and checks shared by the model tests (tests/models is on sys.path)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mindkd.models import MultiModalBatch

T_STEPS = 8
EHR_CH = 34
IMAGE = 32


def make_batch(
    layout: str,
    *,
    steps: int = T_STEPS,
    channels: int = EHR_CH,
    image: int = IMAGE,
    seed: int = 0,
) -> MultiModalBatch:
    """A batch from a layout string, one letter per sample: P paired, E EHR only, C CXR only.

    EHR lengths cycle through ``steps, steps - 3, 1`` so that padding is always present.
    """
    gen = torch.Generator().manual_seed(seed)
    ehr_pos = [i for i, k in enumerate(layout) if k in "PE"]
    cxr_pos = [i for i, k in enumerate(layout) if k in "PC"]
    lengths = torch.tensor([(steps, steps - 3, 1)[j % 3] for j in range(len(ehr_pos))])
    ehr = torch.randn(len(ehr_pos), steps, channels, generator=gen)
    ehr[:, :, channels // 2 :] = (ehr[:, :, channels // 2 :] > 0).float()  # masks are 0/1
    return MultiModalBatch(
        size=len(layout),
        ehr=ehr if ehr_pos else None,
        ehr_lengths=lengths if ehr_pos else None,
        ehr_index=torch.tensor(ehr_pos, dtype=torch.long) if ehr_pos else None,
        cxr=torch.randn(len(cxr_pos), 1, image, image, generator=gen) if cxr_pos else None,
        cxr_index=torch.tensor(cxr_pos, dtype=torch.long) if cxr_pos else None,
    )


def with_garbage_padding(x: Tensor, lengths: Tensor, extra: int = 4) -> Tensor:
    """``x`` with large random values past each length and ``extra`` appended garbage steps."""
    gen = torch.Generator().manual_seed(123)
    padded = torch.cat([x, torch.zeros(x.shape[0], extra, x.shape[2])], dim=1)  # (B, T + extra, C)
    garbage = 100 * torch.randn(padded.shape, generator=gen)
    steps = torch.arange(padded.shape[1])[None, :, None]  # (1, T', 1)
    return torch.where(steps < lengths[:, None, None], padded, garbage)


def params_without_grad(module: nn.Module) -> list[str]:
    """Names of parameters whose gradient is missing or all zero."""
    return [
        name
        for name, p in module.named_parameters()
        if p.grad is None or not bool(p.grad.abs().sum() > 0)
    ]


def params_with_grad(module: nn.Module) -> list[str]:
    """Names of parameters that received a non-zero gradient."""
    return [
        name
        for name, p in module.named_parameters()
        if p.grad is not None and bool(p.grad.abs().sum() > 0)
    ]


def random_projection_loss(t: Tensor, seed: int = 7) -> Tensor:
    """A loss whose gradient reaches every output element with a different weight."""
    gen = torch.Generator().manual_seed(seed)
    return (t * torch.randn(t.shape, generator=gen)).sum()
