"""The registry: names, errors, settings and the parameter counts that pin the architectures."""

from __future__ import annotations

import pytest
import torch

from mindkd.models import (
    Encoder,
    RegistryError,
    build_encoder,
    build_fusion,
    count_parameters,
    encoder_modality,
    encoder_settings,
    list_encoders,
    list_fusions,
    register_encoder,
    register_fusion,
    with_ehr_channels,
)


def test_list_encoders_filters_by_modality() -> None:
    everything = list_encoders()
    assert everything == sorted(list_encoders("ehr") + list_encoders("cxr"))
    assert all(encoder_modality(n) == "ehr" for n in list_encoders("ehr"))
    assert all(encoder_modality(n) == "cxr" for n in list_encoders("cxr"))


def test_unknown_encoder_names_the_name_and_the_available_ones() -> None:
    with pytest.raises(RegistryError, match=r"unknown encoder 'resnet19'; available: .*resnet18"):
        build_encoder("resnet19")


def test_unknown_setting_names_the_setting_and_the_accepted_ones() -> None:
    with pytest.raises(RegistryError, match=r"'lstm' does not take hiden; it takes: in_channels"):
        build_encoder("lstm", hiden=32)


def test_ehr_encoders_take_the_width_of_the_data() -> None:
    for name in list_encoders("ehr"):
        settings = with_ehr_channels(name, {}, 59)
        assert settings == {"in_channels": 59}
        assert build_encoder(name, **settings).in_channels == 59
    assert with_ehr_channels("lstm", {"hidden": 8, "in_channels": 59}, 59) == {
        "hidden": 8,
        "in_channels": 59,
    }
    assert with_ehr_channels("resnet18", {"width": 0.5}, 59) == {"width": 0.5}  # CXR: unchanged
    with pytest.raises(RegistryError, match=r"'gru' needs the input width of its data"):
        with_ehr_channels("gru", {}, None)
    with pytest.raises(RegistryError, match=r"in_channels=34 but the data has 59 columns per hour"):
        with_ehr_channels("tcn", {"in_channels": 34}, 59)


def test_unknown_modality_is_rejected() -> None:
    with pytest.raises(RegistryError, match="modality must be one of"):
        list_encoders("ecg")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="modality must be one of"):
        register_encoder("ecg_net", "ecg")  # type: ignore[arg-type]


def test_a_name_registers_once() -> None:
    with pytest.raises(RegistryError, match="encoder 'lstm' is already registered"):
        register_encoder("lstm", "ehr")(lambda: build_encoder("lstm"))
    with pytest.raises(RegistryError, match="fusion 'concat' is already registered"):
        register_fusion("concat")(lambda *a: None)


def test_encoder_settings_lists_defaults() -> None:
    assert encoder_settings("lstm") == {
        "in_channels": 34,
        "hidden": 128,
        "layers": 1,
        "bidirectional": False,
        "dropout": 0.0,
    }
    assert encoder_settings("resnet18") == {"in_channels": 1, "width": 1.0, "stem": "imagenet"}


def test_settings_reach_the_module() -> None:
    lstm = build_encoder("lstm", in_channels=10, hidden=16, bidirectional=True)
    assert (lstm.in_channels, lstm.num_features) == (10, 32)
    resnet = build_encoder("resnet50", width=0.5, in_channels=3)
    assert (resnet.in_channels, resnet.num_features) == (3, 1024)
    assert isinstance(resnet, Encoder)


def test_fusions_are_registered_by_name() -> None:
    assert list_fusions() == ["concat", "gated", "late", "medfuse"]
    assert count_parameters(build_fusion("late", 8, 16, 3)) == 0
    concat = build_fusion("concat", 8, 16, 3, hidden=None)
    assert count_parameters(concat) == (8 + 16) * 3 + 3
    with pytest.raises(RegistryError, match="unknown fusion 'attention'; available: concat"):
        build_fusion("attention", 8, 16, 3)
    with pytest.raises(RegistryError, match="'gated' does not take heads"):
        build_fusion("gated", 8, 16, 3, heads=2)


# torchvision's resnet18/34/50 and densenet121 without the classifier (fc / classifier removed):
# 11,689,512 - 513,000; 21,797,672 - 513,000; 25,557,032 - 2,049,000; 7,978,856 - 1,025,000.
TORCHVISION_TRUNKS = {
    "resnet18": 11_176_512,
    "resnet34": 21_284_672,
    "resnet50": 23_508_032,
    "densenet121": 6_953_856,
}


@pytest.mark.parametrize(("name", "count"), TORCHVISION_TRUNKS.items())
def test_cxr_architectures_match_torchvision_exactly(name: str, count: int) -> None:
    assert count_parameters(build_encoder(name, in_channels=3)) == count
    stem_kernel = 49 * 64  # one input channel fewer per 7x7 stem filter, twice
    assert count_parameters(build_encoder(name)) == count - 2 * stem_kernel


def test_approximate_sizes_at_one_channel() -> None:
    sizes = {n: count_parameters(build_encoder(n)) for n in TORCHVISION_TRUNKS}
    assert sizes["resnet18"] == pytest.approx(11.17e6, rel=0.05)
    assert sizes["resnet50"] == pytest.approx(23.5e6, rel=0.05)
    assert sizes["densenet121"] == pytest.approx(6.95e6, rel=0.05)


def test_width_scales_resnet_quadratically() -> None:
    full = count_parameters(build_encoder("resnet18"))
    quarter = count_parameters(build_encoder("resnet18", width=0.25))
    assert quarter == pytest.approx(full / 16, rel=0.02)


def test_ehr_parameter_counts() -> None:
    # LSTM: 4 gates x (H x (C + H) + 2H); GRU: 3 gates of the same.
    assert count_parameters(build_encoder("lstm")) == 4 * (128 * (34 + 128) + 2 * 128)
    assert count_parameters(build_encoder("gru")) == 3 * (128 * (34 + 128) + 2 * 128)
    # TCN: block 1 = two k=3 convs (34->64, 64->64) + 1x1 skip; blocks 2-4 = two 64->64 convs.
    conv = 64 * 64 * 3 + 64
    assert (
        count_parameters(build_encoder("tcn"))
        == (34 * 64 * 3 + 64) + conv + (34 * 64 + 64) + 6 * conv
    )
    # Transformer: embedding, 512 learned positions, 2 pre-norm layers (attention, 2 norms, FF x4),
    # final norm.
    layer = (3 * 64 * 64 + 3 * 64) + (64 * 64 + 64) + 2 * 128 + (64 * 256 + 256) + (256 * 64 + 64)
    expected = (34 * 64 + 64) + 512 * 64 + 2 * layer + 128
    assert count_parameters(build_encoder("transformer")) == expected


def test_count_parameters_trainable_only() -> None:
    encoder = build_encoder("lstm", hidden=4)
    total = count_parameters(encoder)
    encoder.rnn.weight_ih_l0.requires_grad_(False)
    assert count_parameters(encoder, trainable_only=True) == total - 4 * 4 * 34
    assert count_parameters(torch.nn.Identity()) == 0
