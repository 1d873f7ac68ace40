"""A stand-in student and tiny synthetic datasets shared by the training tests.

``TinyStudent`` honours the student contract (``forward(batch) -> {head: HeadOutput}`` over the
samples each head applies to) without depending on the real encoders.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from mindkd.models import HeadOutput, MultiModalBatch
from mindkd.models.student import paired_rows
from mindkd.training import MultiModalDataset, SampleTable

STEPS = 6
CHANNELS = 4  # 2 values + 2 masks
IMAGE = 4


class TinyStudent(nn.Module):
    """Linear EHR head over the time-mean, linear CXR head over pixels, linear fused head."""

    num_outputs = 1

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.ehr = nn.Linear(CHANNELS, 1)
        self.cxr = nn.Linear(IMAGE * IMAGE, 1)
        self.fused = nn.Linear(2, 1)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, batch: MultiModalBatch, *, modality_scale: dict[str, Tensor] | None = None
    ) -> dict[str, HeadOutput]:
        out: dict[str, HeadOutput] = {}
        z_e = z_c = None
        if batch.ehr is not None:
            assert batch.ehr_lengths is not None and batch.ehr_index is not None
            mean = batch.ehr.sum(dim=1) / batch.ehr_lengths[:, None].float()  # (Be, 2C)
            z_e = self.ehr(self.drop(mean))
            out["ehr"] = HeadOutput(z_e, batch.ehr_index)
        if batch.cxr is not None:
            assert batch.cxr_index is not None
            z_c = self.cxr(self.drop(batch.cxr.flatten(1)))
            out["cxr"] = HeadOutput(z_c, batch.cxr_index)
        if z_e is not None and z_c is not None:
            assert batch.ehr_index is not None and batch.cxr_index is not None
            e_rows, c_rows = paired_rows(batch.ehr_index, batch.cxr_index, batch.size)
            if e_rows.numel():
                ehr, cxr = z_e[e_rows], z_c[c_rows]
                if modality_scale is not None:
                    ehr, cxr = ehr * modality_scale["ehr"], cxr * modality_scale["cxr"]
                fused = self.fused(torch.cat([ehr, cxr], dim=1))
                out["fused"] = HeadOutput(fused, batch.ehr_index[e_rows])
        return out


def synthetic_dataset(
    n: int, seed: int, *, teacher: bool = True, signal: str = "both"
) -> MultiModalDataset:
    """``n`` samples (paired / EHR-only / CXR-only in turn) whose label is the sign of a latent.

    EHR values and image brightness both carry the latent plus noise (``signal="ehr"`` or
    ``"cxr"``: only that modality does, the other carries an independent draw); teacher targets are
    a noisy copy of 3 × latent, NaN for the modality a sample lacks.
    """
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    other = np.random.default_rng(seed + 10_000).normal(size=n)  # the main stream unchanged
    ehr_latent = other if signal == "cxr" else latent
    cxr_latent = other if signal == "ehr" else latent
    y = (latent > 0).astype(np.float32)[:, None]  # (n, 1)
    kind = np.arange(n) % 3  # 0 paired, 1 EHR only, 2 CXR only
    ehr_row = np.where(kind != 2, np.arange(n), -1)
    cxr_row = np.where(kind != 1, np.arange(n), -1)
    lengths = rng.integers(1, STEPS + 1, size=n)
    values = np.zeros((n, STEPS, CHANNELS), dtype=np.float32)
    for i in range(n):
        noise = rng.normal(scale=0.5, size=(lengths[i], 2))
        values[i, : lengths[i], :2] = ehr_latent[i] + noise
        values[i, : lengths[i], 2:] = 1.0
    brightness = 128 + 40 * (
        cxr_latent[:, None, None] + rng.normal(scale=0.5, size=(n, IMAGE, IMAGE))
    )
    images = np.clip(brightness, 0, 255).astype(np.uint8)
    targets = {}
    if teacher:
        soft = (3 * latent + rng.normal(scale=0.5, size=n)).astype(np.float32)[:, None]
        targets = {
            "ehr": np.where(ehr_row[:, None] >= 0, soft, np.nan).astype(np.float32),
            "cxr": np.where(cxr_row[:, None] >= 0, soft, np.nan).astype(np.float32),
        }
    table = SampleTable(
        ehr_row=ehr_row,
        cxr_row=cxr_row,
        labels=y,
        teacher=targets,
        keys=np.array([f"s{i:03d}" for i in range(n)]),
    )
    return MultiModalDataset(
        table,
        ehr_values=values,
        ehr_lengths=lengths,
        images=images,
        image_mean=0.5,
        image_std=0.25,
    )


def state_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
