"""Fusion modules: the features (and unimodal logits) of paired samples -> fused logits ``(n, K)``.

Every fusion is built as ``cls(ehr_features, cxr_features, num_outputs, **settings)`` and called as
``fusion(ehr (n, De), cxr (n, Dc), ehr_logits (n, K), cxr_logits (n, K))``; rows are paired samples.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from mindkd.models.registry import register_fusion


class Fusion(nn.Module):
    """Base of the fusion modules; ``uses_unimodal_logits``: forward reads the heads' logits."""

    uses_unimodal_logits: ClassVar[bool] = False

    def forward(
        self,
        ehr: Tensor,
        cxr: Tensor,
        ehr_logits: Tensor | None = None,
        cxr_logits: Tensor | None = None,
    ) -> Tensor:
        raise NotImplementedError


@register_fusion("concat")
class ConcatFusion(Fusion):
    """Joint fusion: ``[ehr; cxr]`` -> Linear-ReLU-Dropout -> Linear to K (or one Linear)."""

    def __init__(
        self,
        ehr_features: int,
        cxr_features: int,
        num_outputs: int,
        *,
        hidden: int | None = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        joint = ehr_features + cxr_features
        self.mlp: nn.Module = (
            nn.Linear(joint, num_outputs)
            if hidden is None
            else nn.Sequential(
                nn.Linear(joint, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_outputs),
            )
        )

    def forward(
        self,
        ehr: Tensor,
        cxr: Tensor,
        ehr_logits: Tensor | None = None,
        cxr_logits: Tensor | None = None,
    ) -> Tensor:
        return self.mlp(torch.cat([ehr, cxr], dim=1))  # (n, De + Dc) -> (n, K)


@register_fusion("late")
class LateFusion(Fusion):
    """Late fusion: the mean of the EHR and CXR heads' logits; no parameters of its own."""

    uses_unimodal_logits: ClassVar[bool] = True

    def __init__(self, ehr_features: int, cxr_features: int, num_outputs: int) -> None:
        super().__init__()

    def forward(
        self,
        ehr: Tensor,
        cxr: Tensor,
        ehr_logits: Tensor | None = None,
        cxr_logits: Tensor | None = None,
    ) -> Tensor:
        if ehr_logits is None or cxr_logits is None:
            raise ValueError("late fusion needs the EHR and CXR heads' logits")
        return (ehr_logits + cxr_logits) / 2


@register_fusion("medfuse")
class MedFuseFusion(Fusion):
    """MedFuse-style fusion (Hayat et al., 2022): tokens [ehr, cxr] -> LSTM -> last hidden -> K.

    Each modality's features are projected to a ``token_dim`` token. ``fuse_tokens`` also takes
    sequences with a modality absent (one token), as MedFuse does for a missing X-ray.
    """

    def __init__(
        self,
        ehr_features: int,
        cxr_features: int,
        num_outputs: int,
        *,
        token_dim: int = 128,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.ehr_proj = nn.Linear(ehr_features, token_dim)
        self.cxr_proj = nn.Linear(cxr_features, token_dim)
        self.lstm = nn.LSTM(token_dim, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_outputs)

    def fuse_tokens(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Left-aligned ``tokens (n, L, d)`` with ``lengths (n,)`` tokens per row -> ``(n, K)``."""
        seq: Tensor | PackedSequence = tokens
        if lengths is not None:
            seq = pack_padded_sequence(
                tokens, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
        _, (h_n, _) = self.lstm(seq)  # h_n (1, n, hidden), batch order
        return self.head(self.drop(h_n[-1]))

    def forward(
        self,
        ehr: Tensor,
        cxr: Tensor,
        ehr_logits: Tensor | None = None,
        cxr_logits: Tensor | None = None,
    ) -> Tensor:
        tokens = torch.stack([self.ehr_proj(ehr), self.cxr_proj(cxr)], dim=1)  # (n, 2, token_dim)
        return self.fuse_tokens(tokens)


@register_fusion("gated")
class GatedFusion(Fusion):
    """Gated attention: a gated multimodal unit (Arevalo et al., 2017), softmax over modalities.

    ``z_m = tanh(W_m h_m)``; gates ``a = softmax_m(G [h_ehr; h_cxr])`` per hidden unit; fused
    ``sum_m a_m * z_m`` -> Dropout -> Linear to K.
    """

    def __init__(
        self,
        ehr_features: int,
        cxr_features: int,
        num_outputs: int,
        *,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.ehr_proj = nn.Linear(ehr_features, hidden)
        self.cxr_proj = nn.Linear(cxr_features, hidden)
        self.gate = nn.Linear(ehr_features + cxr_features, 2 * hidden)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_outputs)

    def gates(self, ehr: Tensor, cxr: Tensor) -> Tensor:
        """Per-unit modality weights ``(n, 2, hidden)``, summing to 1 over the modality axis."""
        scores = self.gate(torch.cat([ehr, cxr], dim=1))  # (n, 2 * hidden)
        return scores.view(-1, 2, self.hidden).softmax(dim=1)  # (n, 2, hidden)

    def forward(
        self,
        ehr: Tensor,
        cxr: Tensor,
        ehr_logits: Tensor | None = None,
        cxr_logits: Tensor | None = None,
    ) -> Tensor:
        z = torch.stack([self.ehr_proj(ehr), self.cxr_proj(cxr)], dim=1).tanh()  # (n, 2, hidden)
        fused = (self.gates(ehr, cxr) * z).sum(dim=1)  # (n, hidden)
        return self.head(self.drop(fused))
