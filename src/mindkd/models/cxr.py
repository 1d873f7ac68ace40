"""Chest X-ray encoders in plain torch: ResNet (basic and bottleneck blocks) and DenseNet.

At ``width=1`` and ``in_channels=3`` the layers are those of torchvision's ``resnet18/34/50``
and ``densenet121`` without the classifier (same parameter counts); the default input here is one
grey channel. ``stem="imagenet"`` (7x7 stride-2 convolution, 3x3 max-pool) downsamples by 4 and
suits S >= 64; ``stem="small"`` (3x3 stride-1 convolution, no pool) keeps the resolution, for
S = 32 (there the imagenet stem leaves 1x1 maps in the last stage, and training batch norm then
needs at least two images per batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from mindkd.models.registry import Encoder, Modality, register_encoder

Stem = Literal["imagenet", "small"]


def _stem(in_channels: int, out_channels: int, stem: Stem) -> nn.Sequential:
    if stem == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
    if stem == "small":
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
    raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class CXREncoder(Encoder):
    """Base of the CXR encoders (see ``Encoder``); ``lengths`` is ignored."""

    modality: ClassVar[Modality] = "cxr"


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion: ClassVar[int] = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, "ResNet v1.5"), 1x1 expand by 4 (ResNet-50)."""

    expansion: ClassVar[int] = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
    )


class ResNet(CXREncoder):
    """ResNet trunk + global average pooling. Stage widths ``64 * width * (1, 2, 4, 8)``."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        depths: Sequence[int],
        in_channels: int = 1,
        *,
        width: float = 1.0,
        stem: Stem = "imagenet",
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        planes = [max(1, round(64 * width * 2**i)) for i in range(len(depths))]
        self.stem = _stem(in_channels, planes[0], stem)
        stages: list[nn.Module] = []
        in_ch = planes[0]
        for i, (p, depth) in enumerate(zip(planes, depths, strict=True)):
            blocks: list[nn.Module] = []
            for j in range(depth):
                blocks.append(block(in_ch, p, stride=2 if i > 0 and j == 0 else 1))
                in_ch = p * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.in_channels = in_channels
        self.num_features = in_ch
        _init_weights(self)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h = self.stages(self.stem(x))  # (B, D, S', S')
        return h.mean(dim=(2, 3))  # (B, D)


class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 (to ``bn_size * k``) then BN-ReLU-3x3 (to ``k`` new feature maps)."""

    def __init__(self, in_ch: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, features: list[Tensor]) -> Tensor:
        h = self.conv1(self.relu(self.norm1(torch.cat(features, dim=1))))
        return self.drop(self.conv2(self.relu(self.norm2(h))))


class _DenseBlock(nn.Module):
    def __init__(
        self, layers: int, in_ch: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _DenseLayer(in_ch + i * growth_rate, growth_rate, bn_size, drop_rate)
            for i in range(layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, dim=1)  # (B, in_ch + layers * k, S, S)


class _Transition(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.AvgPool2d(2, stride=2),
        )


class DenseNet(CXREncoder):
    """DenseNet-BC (Huang et al., 2017): dense blocks joined by compressing transitions."""

    def __init__(
        self,
        in_channels: int = 1,
        *,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        stem: Stem = "imagenet",
    ) -> None:
        super().__init__()
        self.stem = _stem(in_channels, num_init_features, stem)
        parts: list[nn.Module] = []
        ch = num_init_features
        for i, layers in enumerate(block_config):
            parts.append(_DenseBlock(layers, ch, growth_rate, bn_size, drop_rate))
            ch += layers * growth_rate
            if i < len(block_config) - 1:
                parts.append(_Transition(ch, int(ch * compression)))
                ch = int(ch * compression)
        parts += [nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*parts)
        self.in_channels = in_channels
        self.num_features = ch
        _init_weights(self)

    def forward_features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h = self.features(self.stem(x))  # (B, D, S', S')
        return h.mean(dim=(2, 3))  # (B, D)


@register_encoder("resnet18", "cxr")
def resnet18(*, in_channels: int = 1, width: float = 1.0, stem: Stem = "imagenet") -> ResNet:
    """ResNet-18: basic blocks, depths (2, 2, 2, 2); 512 * width features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, width=width, stem=stem)


@register_encoder("resnet34", "cxr")
def resnet34(*, in_channels: int = 1, width: float = 1.0, stem: Stem = "imagenet") -> ResNet:
    """ResNet-34: basic blocks, depths (3, 4, 6, 3); 512 * width features."""
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels, width=width, stem=stem)


@register_encoder("resnet50", "cxr")
def resnet50(*, in_channels: int = 1, width: float = 1.0, stem: Stem = "imagenet") -> ResNet:
    """ResNet-50: bottleneck blocks, depths (3, 4, 6, 3); 2048 * width features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, width=width, stem=stem)


@register_encoder("densenet121", "cxr")
def densenet121(
    *,
    in_channels: int = 1,
    growth_rate: int = 32,
    block_config: Sequence[int] = (6, 12, 24, 16),
    num_init_features: int = 64,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    stem: Stem = "imagenet",
) -> DenseNet:
    """DenseNet-121 (k = 32, blocks 6/12/24/16); 1024 features; CheXNet's backbone."""
    return DenseNet(
        in_channels,
        growth_rate=growth_rate,
        block_config=block_config,
        num_init_features=num_init_features,
        bn_size=bn_size,
        drop_rate=drop_rate,
        stem=stem,
    )


@register_encoder("densenet_small", "cxr")
def densenet_small(
    *,
    in_channels: int = 1,
    growth_rate: int = 12,
    block_config: Sequence[int] = (4, 8, 12, 8),
    num_init_features: int = 24,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    stem: Stem = "imagenet",
) -> DenseNet:
    """A small DenseNet-BC (k = 12, blocks 4/8/12/8) for students."""
    return DenseNet(
        in_channels,
        growth_rate=growth_rate,
        block_config=block_config,
        num_init_features=num_init_features,
        bn_size=bn_size,
        drop_rate=drop_rate,
        stem=stem,
    )
