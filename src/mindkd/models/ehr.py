"""EHR time-series encoders: recurrent (LSTM, GRU), temporal convolution and transformer.

Input ``x (B, T, in_channels)`` (the ``<task>.timeseries`` columns: standardised or one-hot values
then observation masks; ``in_channels`` is that store's width, passed by whoever builds the encoder
for training or serving) and ``lengths (B,)`` in hours; every encoder ignores the steps past a
sample's length: padding never changes its features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from mindkd.models.registry import EHR_CHANNELS, Encoder, Modality, register_encoder

Pooling = Literal["mean", "last"]


def _full_lengths(x: Tensor, lengths: Tensor | None) -> Tensor:
    if lengths is None:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
    return lengths.to(device=x.device, dtype=torch.long)


def _valid_steps(lengths: Tensor, steps: int) -> Tensor:
    """``(B, T)`` bool, True at the steps before each sample's length."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def _pool(h: Tensor, lengths: Tensor, pooling: Pooling) -> Tensor:
    """Pool ``h (B, T, D)`` over each sample's valid steps -> ``(B, D)``."""
    if pooling == "last":
        return h[torch.arange(h.shape[0], device=h.device), lengths - 1]
    valid = _valid_steps(lengths, h.shape[1]).unsqueeze(-1)  # (B, T, 1)
    return torch.where(valid, h, 0.0).sum(dim=1) / lengths.unsqueeze(-1).to(h.dtype)


class EHREncoder(Encoder):
    """Base of the EHR encoders (see ``Encoder``)."""

    modality: ClassVar[Modality] = "ehr"


class RNNEncoder(EHREncoder):
    """LSTM or GRU over the packed sequence; features = last layer's final hidden state(s).

    Bidirectional models concatenate the forward and backward final states (``2 * hidden``).
    ``dropout`` applies between stacked layers (PyTorch semantics), so it needs ``layers > 1``.
    """

    def __init__(
        self,
        in_channels: int = EHR_CHANNELS,
        *,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        cell: Literal["lstm", "gru"] = "lstm",
    ) -> None:
        super().__init__()
        if dropout > 0 and layers == 1:
            raise ValueError("RNN dropout acts between layers: set layers > 1 or dropout = 0")
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(
            in_channels,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        self.in_channels = in_channels
        self.num_directions = 2 if bidirectional else 1
        self.num_features = hidden * self.num_directions

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        lengths = _full_lengths(x, lengths)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, H), batch order
        last = h_n.reshape(-1, self.num_directions, *h_n.shape[1:])[-1]  # (dirs, B, H)
        return last.transpose(0, 1).reshape(x.shape[0], self.num_features)  # (B, dirs * H)


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection (Bai et al., 2018)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, dilation: int, dropout: float
    ) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel_size, dilation=dilation)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(self.act(self.conv1(nn.functional.pad(x, (self.pad, 0)))))
        h = self.drop(self.act(self.conv2(nn.functional.pad(h, (self.pad, 0)))))
        return self.act(h + self.skip(x))


class TCNEncoder(EHREncoder):
    """Temporal convolutional network: causal dilated residual blocks, pooled over valid steps.

    Causality means the output at step t only sees steps <= t, so steps past the length never reach
    the pooled features. ``dilations`` defaults to ``1, 2, 4, ...`` (one per level).
    """

    def __init__(
        self,
        in_channels: int = EHR_CHANNELS,
        *,
        channels: int = 64,
        levels: int = 4,
        kernel_size: int = 3,
        dilations: Sequence[int] | None = None,
        dropout: float = 0.0,
        pooling: Pooling = "mean",
    ) -> None:
        super().__init__()
        if dilations is None:
            dilations = tuple(2**i for i in range(levels))
        dilations = tuple(dilations)
        if len(dilations) != levels:
            raise ValueError(f"TCN needs one dilation per level: levels={levels}, {dilations=}")
        self.blocks = nn.Sequential(
            *(
                _CausalBlock(in_channels if i == 0 else channels, channels, kernel_size, d, dropout)
                for i, d in enumerate(dilations)
            )
        )
        self.pooling: Pooling = pooling
        self.in_channels = in_channels
        self.num_features = channels
        self.receptive_field = 1 + 2 * (kernel_size - 1) * sum(dilations)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        lengths = _full_lengths(x, lengths)
        h = self.blocks(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C) -> (B, C, T) -> (B, T, C)
        return _pool(h, lengths, self.pooling)


def _sinusoidal(steps: int, dim: int, device: torch.device) -> Tensor:
    """Vaswani et al. positions ``(steps, dim)``."""
    pos = torch.arange(steps, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(steps, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class TransformerEHREncoder(EHREncoder):
    """Pre-norm transformer encoder over hourly steps; padding is masked from attention and pooling.

    ``positions``: ``learned`` (a table of ``max_len`` rows) or ``sinusoidal`` (any length).
    """

    def __init__(
        self,
        in_channels: int = EHR_CHANNELS,
        *,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff_mult: int = 4,
        dropout: float = 0.1,
        max_len: int = 512,
        positions: Literal["learned", "sinusoidal"] = "learned",
        pooling: Pooling = "mean",
    ) -> None:
        super().__init__()
        if d_model % heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {positions!r}")
        self.embed = nn.Linear(in_channels, d_model)
        self.positions = positions
        self.max_len = max_len
        self.pos_embed = (
            nn.Parameter(torch.randn(max_len, d_model) * 0.02) if positions == "learned" else None
        )
        layer = nn.TransformerEncoderLayer(
            d_model,
            heads,
            dim_feedforward=ff_mult * d_model,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.pooling: Pooling = pooling
        self.in_channels = in_channels
        self.num_features = d_model

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        lengths = _full_lengths(x, lengths)
        steps = x.shape[1]
        h = self.embed(x)  # (B, T, d_model)
        if self.pos_embed is not None:
            if steps > self.max_len:
                raise ValueError(f"sequence of {steps} steps exceeds max_len={self.max_len}")
            h = h + self.pos_embed[:steps]
        else:
            h = h + _sinusoidal(steps, h.shape[-1], h.device).to(h.dtype)
        padding = ~_valid_steps(lengths, steps)  # (B, T), True = ignore
        h = self.encoder(h, src_key_padding_mask=padding)
        return _pool(h, lengths, self.pooling)


@register_encoder("lstm", "ehr")
def lstm(
    *,
    in_channels: int = EHR_CHANNELS,
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
) -> RNNEncoder:
    """LSTM encoder (MedFuse's EHR encoder is a 2-layer LSTM of 256)."""
    return RNNEncoder(
        in_channels,
        hidden=hidden,
        layers=layers,
        bidirectional=bidirectional,
        dropout=dropout,
        cell="lstm",
    )


@register_encoder("gru", "ehr")
def gru(
    *,
    in_channels: int = EHR_CHANNELS,
    hidden: int = 128,
    layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
) -> RNNEncoder:
    """GRU encoder."""
    return RNNEncoder(
        in_channels,
        hidden=hidden,
        layers=layers,
        bidirectional=bidirectional,
        dropout=dropout,
        cell="gru",
    )


@register_encoder("tcn", "ehr")
def tcn(
    *,
    in_channels: int = EHR_CHANNELS,
    channels: int = 64,
    levels: int = 4,
    kernel_size: int = 3,
    dilations: Sequence[int] | None = None,
    dropout: float = 0.0,
    pooling: Pooling = "mean",
) -> TCNEncoder:
    """Temporal convolutional network (receptive field ``1 + 2 (k - 1) sum(dilations)`` hours)."""
    return TCNEncoder(
        in_channels,
        channels=channels,
        levels=levels,
        kernel_size=kernel_size,
        dilations=dilations,
        dropout=dropout,
        pooling=pooling,
    )


@register_encoder("transformer", "ehr")
def transformer(
    *,
    in_channels: int = EHR_CHANNELS,
    d_model: int = 64,
    heads: int = 4,
    layers: int = 2,
    ff_mult: int = 4,
    dropout: float = 0.1,
    max_len: int = 512,
    positions: Literal["learned", "sinusoidal"] = "learned",
    pooling: Pooling = "mean",
) -> TransformerEHREncoder:
    """Transformer encoder with learned or sinusoidal positions."""
    return TransformerEHREncoder(
        in_channels,
        d_model=d_model,
        heads=heads,
        layers=layers,
        ff_mult=ff_mult,
        dropout=dropout,
        max_len=max_len,
        positions=positions,
        pooling=pooling,
    )
