"""Single-head fusion baselines that MIND is compared with.

``ZeroFilledJointModel`` is classic joint fusion: a missing X-ray becomes a zero image (a missing
EHR series becomes one all-unobserved hour), both encoders run on every sample, one head predicts.
Which zero is a setting of the network (``fill_value``, in the normalised units the encoder sees):
an all-black image (raw pixels 0, ``-mean / std`` after normalisation; the default of the
project's ``missing_image: black``) or 0 after normalisation, i.e. the train-mean grey image
(``missing_image: mean``).
``MedFuseModel`` follows MedFuse (Hayat et al., 2022): an LSTM over the modality tokens a sample
has, so a missing X-ray shortens the token sequence instead of being imputed. A MedFuse-sized
teacher is either of these (or ``MultiHeadStudent(..., fusion="medfuse")``) with large encoders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from mindkd.models.batch import HeadOutput, MultiModalBatch
from mindkd.models.fusion import Fusion, MedFuseFusion
from mindkd.models.registry import Encoder, build_fusion
from mindkd.models.student import ClassifierHead, RoutedModel, check_encoder_modality, modality_rows


def _union_rows(batch: MultiModalBatch) -> tuple[Tensor, Tensor]:
    """``index (n,)``: sorted positions with any modality; ``row (size,)``: position -> row."""
    indices = [i for i in (batch.ehr_index, batch.cxr_index) if i is not None and i.numel() > 0]
    if not indices:
        raise ValueError("the batch holds no EHR rows and no images")
    present = torch.zeros(batch.size, dtype=torch.bool, device=indices[0].device)
    for i in indices:
        present[i] = True
    index = torch.nonzero(present).squeeze(1)  # (n,)
    row = torch.full((batch.size,), -1, dtype=torch.long, device=index.device)
    row[index] = torch.arange(index.numel(), device=index.device)
    return index, row


class ZeroFilledJointModel(RoutedModel):
    """Joint fusion with zero imputation: ``{"fused": HeadOutput}`` over every sample in the batch.

    ``image_size`` is the side of the filled image; the images in a batch must have that size.
    ``fill_value`` is every pixel of a missing X-ray in normalised units: 0 is the train-mean
    image, ``-mean / std`` a black one.
    """

    def __init__(
        self,
        ehr_encoder: Encoder,
        cxr_encoder: Encoder,
        num_outputs: int,
        image_size: int,
        *,
        fusion: str = "concat",
        head_dropout: float = 0.0,
        fusion_kwargs: Mapping[str, Any] | None = None,
        fill_value: float = 0.0,
    ) -> None:
        super().__init__()
        check_encoder_modality(ehr_encoder, "ehr")
        check_encoder_modality(cxr_encoder, "cxr")
        self.num_outputs = num_outputs
        self.image_size = image_size
        self.fill_value = float(fill_value)
        self.ehr_encoder = ehr_encoder
        self.cxr_encoder = cxr_encoder
        module = build_fusion(
            fusion,
            ehr_encoder.num_features,
            cxr_encoder.num_features,
            num_outputs,
            **dict(fusion_kwargs or {}),
        )
        assert isinstance(module, Fusion)
        self.fusion = module
        self.ehr_head: ClassifierHead | None = None
        self.cxr_head: ClassifierHead | None = None
        if module.uses_unimodal_logits:  # late fusion averages unimodal heads
            self.ehr_head = ClassifierHead(ehr_encoder.num_features, num_outputs, head_dropout)
            self.cxr_head = ClassifierHead(cxr_encoder.num_features, num_outputs, head_dropout)

    def _filled_inputs(self, batch: MultiModalBatch, row: Tensor, n: int) -> tuple[Tensor, ...]:
        """Filled ``ehr (n, T, C)`` (zeros), ``lengths (n,)`` and ``cxr (n, 1, S, S)`` (``fill_value``)."""
        device = row.device
        ehr_rows = modality_rows(batch, "ehr")
        if ehr_rows is None:
            ehr = torch.zeros(n, 1, self.ehr_encoder.in_channels, device=device)
            lengths = torch.ones(n, dtype=torch.long, device=device)
        else:
            x, idx = ehr_rows
            ehr = x.new_zeros((n, *x.shape[1:])).index_copy(0, row[idx], x)
            given = (
                batch.ehr_lengths
                if batch.ehr_lengths is not None
                else x.new_full((x.shape[0],), x.shape[1], dtype=torch.long)
            )
            lengths = torch.ones(n, dtype=torch.long, device=device).index_copy(
                0, row[idx], given.to(device=device, dtype=torch.long)
            )
        cxr_rows = modality_rows(batch, "cxr")
        size = self.image_size
        if cxr_rows is None:
            cxr = torch.full(
                (n, self.cxr_encoder.in_channels, size, size), self.fill_value, device=device
            )
        else:
            x, idx = cxr_rows
            if tuple(x.shape[-2:]) != (size, size):
                raise ValueError(
                    f"images are {tuple(x.shape[-2:])} but the model zero-fills {size}x{size}: "
                    "set image_size to the image side"
                )
            cxr = x.new_full((n, *x.shape[1:]), self.fill_value).index_copy(0, row[idx], x)
        return ehr, lengths, cxr

    def forward(self, batch: MultiModalBatch) -> dict[str, HeadOutput]:
        index, row = _union_rows(batch)
        ehr, lengths, cxr = self._filled_inputs(batch, row, index.numel())
        h_e = self.ehr_encoder(ehr, lengths)
        h_c = self.cxr_encoder(cxr)
        logits_e = self.ehr_head(h_e) if self.ehr_head is not None else None
        logits_c = self.cxr_head(h_c) if self.cxr_head is not None else None
        return {"fused": HeadOutput(self.fusion(h_e, h_c, logits_e, logits_c), index)}


class MedFuseModel(RoutedModel):
    """MedFuse: tokens of the modalities a sample has, in the order [ehr, cxr], through one LSTM.

    Returns ``{"fused": HeadOutput}`` over every sample in the batch; nothing is imputed.
    """

    def __init__(
        self,
        ehr_encoder: Encoder,
        cxr_encoder: Encoder,
        num_outputs: int,
        *,
        token_dim: int = 256,
        hidden: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_encoder_modality(ehr_encoder, "ehr")
        check_encoder_modality(cxr_encoder, "cxr")
        self.num_outputs = num_outputs
        self.ehr_encoder = ehr_encoder
        self.cxr_encoder = cxr_encoder
        self.fusion = MedFuseFusion(
            ehr_encoder.num_features,
            cxr_encoder.num_features,
            num_outputs,
            token_dim=token_dim,
            hidden=hidden,
            dropout=dropout,
        )
        self.token_dim = token_dim

    def forward(self, batch: MultiModalBatch) -> dict[str, HeadOutput]:
        index, row = _union_rows(batch)
        n = index.numel()
        tokens = torch.zeros(n, 2, self.token_dim, device=index.device)
        has_ehr = torch.zeros(n, dtype=torch.bool, device=index.device)
        counts = torch.zeros(n, dtype=torch.long, device=index.device)
        ehr_rows = modality_rows(batch, "ehr")
        if ehr_rows is not None:
            x, idx = ehr_rows
            token = self.fusion.ehr_proj(self.ehr_encoder(x, batch.ehr_lengths))
            tokens = tokens.index_put((row[idx], torch.zeros_like(idx)), token.to(tokens.dtype))
            has_ehr[row[idx]] = True
            counts[row[idx]] += 1
        cxr_rows = modality_rows(batch, "cxr")
        if cxr_rows is not None:
            x, idx = cxr_rows
            token = self.fusion.cxr_proj(self.cxr_encoder(x))
            slot = has_ehr[row[idx]].long()  # after the EHR token when there is one
            tokens = tokens.index_put((row[idx], slot), token.to(tokens.dtype))
            counts[row[idx]] += 1
        return {"fused": HeadOutput(self.fusion.fuse_tokens(tokens, counts), index)}
