"""The multi-head student (heads ehr, cxr, fused), the unimodal classifier, and inference routing.

A sample runs only the encoders of the modalities it has: the EHR encoder sees ``batch.ehr``, the
CXR encoder ``batch.cxr``, and the fused head the samples present in both. Nothing is imputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from mindkd.models.batch import HeadOutput, MultiModalBatch
from mindkd.models.fusion import Fusion
from mindkd.models.registry import Encoder, Modality, build_fusion

Routing = Literal["fused", "mean"]
ROUTINGS: tuple[Routing, ...] = get_args(Routing)
HEADS: tuple[str, ...] = ("ehr", "cxr", "fused")


def paired_rows(ehr_index: Tensor, cxr_index: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Rows of the EHR and of the CXR tensors that hold the same samples, in EHR row order.

    ``ehr_index[e] == cxr_index[c]`` for each returned pair ``(e, c)``; unimodal samples drop out.
    """
    cxr_row = torch.full((size,), -1, dtype=torch.long, device=cxr_index.device)
    cxr_row[cxr_index] = torch.arange(cxr_index.numel(), device=cxr_index.device)
    cxr_row_of_ehr = cxr_row[ehr_index]  # (Be,), -1 where the sample has no image
    ehr_rows = torch.nonzero(cxr_row_of_ehr >= 0).squeeze(1)  # (n,)
    return ehr_rows, cxr_row_of_ehr[ehr_rows]


def route(
    outputs: Mapping[str, HeadOutput],
    size: int,
    num_outputs: int,
    routing: Routing = "fused",
    device: torch.device | str | None = None,
) -> Tensor:
    """One ``(size, K)`` logit row per sample from the head outputs; rows no head covers are NaN.

    ``fused``: paired samples take the fused head, the others their own unimodal head (the most
    specific head wins). ``mean``: the mean of every head that covers the sample (for a paired
    sample: ehr, cxr and fused).
    """
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    present = [outputs[h] for h in HEADS if h in outputs]
    if present:
        device, dtype = present[0].logits.device, present[0].logits.dtype
    else:
        dtype = torch.get_default_dtype()
    logits = torch.full((size, num_outputs), float("nan"), device=device, dtype=dtype)
    if routing == "fused":
        for out in present:
            logits = logits.index_copy(0, out.index, out.logits)
        return logits
    total = torch.zeros_like(logits)
    count = torch.zeros(size, 1, device=logits.device, dtype=dtype)
    for out in present:
        total = total.index_add(0, out.index, out.logits)
        count = count.index_add(0, out.index, torch.ones_like(out.logits[:, :1]))
    return total / count  # 0 / 0 = NaN where no head applies


class ClassifierHead(nn.Module):
    """Dropout then a linear map from features to K logits."""

    def __init__(self, in_features: int, num_outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_outputs)

    def forward(self, features: Tensor) -> Tensor:
        return self.fc(self.drop(features))


def modality_rows(batch: MultiModalBatch, modality: Modality) -> tuple[Tensor, Tensor] | None:
    """``(x, index)`` of the batch's samples that have ``modality``, or None when there are none."""
    x = batch.ehr if modality == "ehr" else batch.cxr
    index = batch.ehr_index if modality == "ehr" else batch.cxr_index
    if x is None or x.shape[0] == 0:
        return None
    if index is None or index.shape[0] != x.shape[0]:
        raise ValueError(f"batch.{modality} has {x.shape[0]} rows; batch.{modality}_index does not")
    return x, index


def check_encoder_modality(encoder: Encoder | None, modality: Modality) -> None:
    if encoder is not None and getattr(encoder, "modality", None) != modality:
        raise ValueError(
            f"the {modality} encoder slot got a {getattr(encoder, 'modality', 'non-Encoder')} "
            f"encoder ({type(encoder).__name__})"
        )


class RoutedModel(nn.Module):
    """A model whose ``forward(batch)`` returns head outputs and whose ``predict`` routes them."""

    num_outputs: int

    def forward(self, batch: MultiModalBatch) -> dict[str, HeadOutput]:
        raise NotImplementedError

    def predict(self, batch: MultiModalBatch, routing: Routing = "fused") -> Tensor:
        """Routed logits ``(B, K)``: paired -> fused (or mean of heads), unimodal -> own head."""
        device = next(self.parameters()).device
        return route(self(batch), batch.size, self.num_outputs, routing, device=device)


class MultiHeadStudent(RoutedModel):
    """Per-modality encoders and heads plus a fused head over the paired samples.

    ``forward`` returns ``{"ehr", "cxr", "fused"} -> HeadOutput``, each key present only when the
    model has that head and the batch has at least one sample for it. Either encoder may be None (no
    fused head then).
    """

    def __init__(
        self,
        ehr_encoder: Encoder | None,
        cxr_encoder: Encoder | None,
        num_outputs: int,
        fusion: str = "concat",
        head_dropout: float = 0.0,
        *,
        fusion_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if ehr_encoder is None and cxr_encoder is None:
            raise ValueError("a model needs at least one encoder (ehr_encoder or cxr_encoder)")
        check_encoder_modality(ehr_encoder, "ehr")
        check_encoder_modality(cxr_encoder, "cxr")
        self.num_outputs = num_outputs
        self.ehr_encoder = ehr_encoder
        self.cxr_encoder = cxr_encoder
        self.heads = nn.ModuleDict()
        for name, enc in (("ehr", ehr_encoder), ("cxr", cxr_encoder)):
            if enc is not None:
                self.heads[name] = ClassifierHead(enc.num_features, num_outputs, head_dropout)
        self.fusion: Fusion | None = None
        if ehr_encoder is not None and cxr_encoder is not None:
            module = build_fusion(
                fusion,
                ehr_encoder.num_features,
                cxr_encoder.num_features,
                num_outputs,
                **dict(fusion_kwargs or {}),
            )
            assert isinstance(module, Fusion)
            self.fusion = module

    def forward(
        self, batch: MultiModalBatch, *, modality_scale: Mapping[str, Tensor] | None = None
    ) -> dict[str, HeadOutput]:
        """Head outputs; ``modality_scale`` (modality -> scalar) multiplies what the fusion reads
        of each modality (its features and head logits; MCKD's meta pass, ``training.mckd``)."""
        features: dict[str, tuple[Tensor, Tensor]] = {}  # modality -> (features, index)
        outputs: dict[str, HeadOutput] = {}
        for name, encoder in (("ehr", self.ehr_encoder), ("cxr", self.cxr_encoder)):
            rows = modality_rows(batch, name)  # type: ignore[arg-type]
            if encoder is None or rows is None:
                continue
            x, index = rows
            h = encoder(x, batch.ehr_lengths if name == "ehr" else None)
            features[name] = (h, index)
            outputs[name] = HeadOutput(self.heads[name](h), index)
        if self.fusion is not None and "ehr" in features and "cxr" in features:
            (h_e, i_e), (h_c, i_c) = features["ehr"], features["cxr"]
            e_rows, c_rows = paired_rows(i_e, i_c, batch.size)
            if e_rows.numel() > 0:
                ehr_in = (h_e[e_rows], outputs["ehr"].logits[e_rows])
                cxr_in = (h_c[c_rows], outputs["cxr"].logits[c_rows])
                if modality_scale is not None:
                    ehr_in = tuple(x * modality_scale["ehr"] for x in ehr_in)  # type: ignore[assignment]
                    cxr_in = tuple(x * modality_scale["cxr"] for x in cxr_in)  # type: ignore[assignment]
                fused = self.fusion(ehr_in[0], cxr_in[0], ehr_in[1], cxr_in[1])
                outputs["fused"] = HeadOutput(fused, i_e[e_rows])
        return outputs


class UnimodalClassifier(MultiHeadStudent):
    """A teacher: one encoder and a linear head; ``forward`` returns ``{modality: HeadOutput}``.

    Its state dict keys (``ehr_encoder.*``, ``heads.ehr.*``) match the student's branch of the same
    modality.
    """

    def __init__(self, encoder: Encoder, num_outputs: int, head_dropout: float = 0.0) -> None:
        modality = getattr(encoder, "modality", None)
        if modality not in ("ehr", "cxr"):
            raise ValueError(f"{type(encoder).__name__} is not an Encoder with a modality")
        super().__init__(
            encoder if modality == "ehr" else None,
            encoder if modality == "cxr" else None,
            num_outputs,
            head_dropout=head_dropout,
        )
        self.modality: Modality = modality

    @property
    def encoder(self) -> Encoder:
        encoder = self.ehr_encoder if self.modality == "ehr" else self.cxr_encoder
        assert encoder is not None
        return encoder
