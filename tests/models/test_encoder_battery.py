"""The battery every registered encoder passes: shape, finite, gradients, padding, determinism."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_helpers import EHR_CH, IMAGE, T_STEPS, params_without_grad, random_projection_loss
from model_helpers import with_garbage_padding as garbage_padded

from mindkd.models import Encoder, build_encoder, encoder_modality, list_encoders

B = 3
LENGTHS = torch.tensor([T_STEPS, T_STEPS - 3, 1])

# Registered defaults plus the non-default code paths of each family.
VARIANTS: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in list_encoders()] + [
    ("lstm", {"hidden": 8, "layers": 2, "bidirectional": True, "dropout": 0.1}),
    ("gru", {"hidden": 8, "bidirectional": True}),
    ("tcn", {"channels": 8, "levels": 2, "kernel_size": 2, "dilations": (1, 3), "pooling": "last"}),
    ("transformer", {"d_model": 16, "heads": 2, "layers": 1, "positions": "sinusoidal"}),
    ("transformer", {"d_model": 16, "heads": 2, "layers": 1, "pooling": "last", "max_len": 16}),
    ("resnet18", {"width": 0.25, "stem": "small"}),
    ("resnet50", {"width": 0.125, "stem": "small"}),
    ("densenet_small", {"stem": "small", "drop_rate": 0.1}),
]
VARIANT_IDS = [
    f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw in VARIANTS
]
EHR_VARIANTS = [(n, kw) for n, kw in VARIANTS if encoder_modality(n) == "ehr"]
EHR_IDS = [
    i for i, (n, _) in zip(VARIANT_IDS, VARIANTS, strict=True) if encoder_modality(n) == "ehr"
]


def _inputs(encoder: Encoder, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    if encoder.modality == "ehr":
        return torch.randn(B, T_STEPS, EHR_CH, generator=gen), LENGTHS
    return torch.randn(B, 1, IMAGE, IMAGE, generator=gen), None


def _build(name: str, kwargs: dict[str, Any], seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    return build_encoder(name, **kwargs)


def test_every_family_is_registered() -> None:
    assert list_encoders("ehr") == ["gru", "lstm", "tcn", "transformer"]
    assert list_encoders("cxr") == [
        "densenet121",
        "densenet_small",
        "resnet18",
        "resnet34",
        "resnet50",
    ]


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=VARIANT_IDS)
def test_shape_finite_and_every_parameter_gets_a_gradient(
    name: str, kwargs: dict[str, Any]
) -> None:
    encoder = _build(name, kwargs).train()
    assert encoder.modality == encoder_modality(name)
    x, lengths = _inputs(encoder)
    features = encoder.forward_features(x, lengths)
    assert features.shape == (B, encoder.num_features)
    assert torch.isfinite(features).all()
    random_projection_loss(features).backward()
    assert params_without_grad(encoder) == []


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=VARIANT_IDS)
def test_same_seed_same_outputs(name: str, kwargs: dict[str, Any]) -> None:
    x, lengths = _inputs(_build(name, kwargs))
    outputs = []
    for _ in range(2):
        encoder = _build(name, kwargs, seed=11).eval()
        with torch.no_grad():
            outputs.append(encoder.forward_features(x, lengths))
    assert torch.equal(outputs[0], outputs[1])
    other = _build(name, kwargs, seed=12).eval()
    with torch.no_grad():
        assert not torch.equal(outputs[0], other.forward_features(x, lengths))


@pytest.mark.parametrize(("name", "kwargs"), EHR_VARIANTS, ids=EHR_IDS)
def test_ehr_features_ignore_steps_past_the_length(name: str, kwargs: dict[str, Any]) -> None:
    encoder = _build(name, kwargs).eval()
    x, lengths = _inputs(encoder)
    assert lengths is not None
    with torch.no_grad():
        clean = encoder.forward_features(x, lengths)
        noisy = encoder.forward_features(garbage_padded(x, lengths), lengths)
        full = encoder.forward_features(x, None)  # every step valid
    torch.testing.assert_close(noisy, clean, atol=1e-5, rtol=1e-5)
    # The length is used: a full-length sample is unchanged, a shortened one is not.
    torch.testing.assert_close(full[0], clean[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(full[1], clean[1], atol=1e-4)


@pytest.mark.parametrize("name", list_encoders("cxr"))
@pytest.mark.parametrize("size", [32, 64, 224])
def test_cxr_encoders_take_every_image_size(name: str, size: int) -> None:
    encoder = _build(name, {}).eval()
    with torch.no_grad():
        features = encoder.forward_features(torch.randn(1, 1, size, size))
    assert features.shape == (1, encoder.num_features)
    assert torch.isfinite(features).all()


def test_transformer_rejects_sequences_longer_than_learned_positions() -> None:
    encoder = build_encoder("transformer", d_model=8, heads=2, layers=1, max_len=4)
    with pytest.raises(ValueError, match="exceeds max_len=4"):
        encoder.forward_features(torch.randn(1, 5, EHR_CH))
    sinusoidal = build_encoder(
        "transformer", d_model=8, heads=2, layers=1, max_len=4, positions="sinusoidal"
    )
    assert sinusoidal.forward_features(torch.randn(1, 5, EHR_CH)).shape == (1, 8)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("tcn", {"levels": 3, "dilations": (1, 2)}, "one dilation per level"),
        ("transformer", {"d_model": 10, "heads": 4}, "divisible by heads"),
        ("transformer", {"positions": "rotary"}, "learned' or 'sinusoidal"),
        ("lstm", {"dropout": 0.2}, "set layers > 1"),
        ("resnet18", {"width": 0.0}, "width must be > 0"),
        ("densenet_small", {"stem": "huge"}, "stem must be"),
    ],
)
def test_bad_settings_fail_with_a_message(name: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_encoder(name, **kwargs)
