"""Single-head baselines: zero-filled joint fusion and MedFuse."""

from __future__ import annotations

import pytest
import torch
from model_helpers import IMAGE, make_batch, params_without_grad, random_projection_loss

from mindkd.models import (
    MedFuseModel,
    MultiHeadStudent,
    MultiModalBatch,
    ZeroFilledJointModel,
    build_encoder,
    count_parameters,
    list_fusions,
)

K = 2
LAYOUT = "PEPCEC"  # paired 0, 2; EHR only 1, 4; CXR only 3, 5


def zero_filled(fusion: str = "concat", seed: int = 0) -> ZeroFilledJointModel:
    torch.manual_seed(seed)
    return ZeroFilledJointModel(
        build_encoder("gru", hidden=8),
        build_encoder("resnet18", width=0.125, stem="small"),
        K,
        image_size=IMAGE,
        fusion=fusion,
    )


def medfuse(seed: int = 0) -> MedFuseModel:
    torch.manual_seed(seed)
    return MedFuseModel(
        build_encoder("lstm", hidden=8),
        build_encoder("densenet_small", stem="small", block_config=(2, 2), growth_rate=4),
        K,
        token_dim=6,
        hidden=5,
    )


def _row(batch: MultiModalBatch, position: int) -> MultiModalBatch:
    """The one-sample batch holding sample ``position`` of ``batch``."""

    def pick(x: torch.Tensor | None, index: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or index is None or not bool((index == position).any()):
            return None
        return x[index == position]

    has_ehr = pick(batch.ehr, batch.ehr_index) is not None
    has_cxr = pick(batch.cxr, batch.cxr_index) is not None
    return MultiModalBatch(
        size=1,
        ehr=pick(batch.ehr, batch.ehr_index),
        ehr_lengths=pick(batch.ehr_lengths, batch.ehr_index),
        ehr_index=torch.zeros(1, dtype=torch.long) if has_ehr else None,
        cxr=pick(batch.cxr, batch.cxr_index),
        cxr_index=torch.zeros(1, dtype=torch.long) if has_cxr else None,
    )


@pytest.mark.parametrize("fusion", list_fusions())
def test_zero_filled_battery(fusion: str) -> None:
    model = zero_filled(fusion).train()
    batch = make_batch(LAYOUT)
    outputs = model(batch)
    assert set(outputs) == {"fused"}
    assert outputs["fused"].index.tolist() == list(range(6))
    assert outputs["fused"].logits.shape == (6, K)
    assert torch.isfinite(outputs["fused"].logits).all()
    random_projection_loss(outputs["fused"].logits).backward()
    assert params_without_grad(model) == []
    assert (model.ehr_head is not None) == (fusion == "late")


def test_medfuse_battery() -> None:
    model = medfuse().train()
    outputs = model(make_batch(LAYOUT))
    assert set(outputs) == {"fused"}
    assert outputs["fused"].index.tolist() == list(range(6))
    assert torch.isfinite(outputs["fused"].logits).all()
    random_projection_loss(outputs["fused"].logits).backward()
    assert params_without_grad(model) == []


def test_zero_filled_feeds_a_zero_image_to_the_cxr_encoder() -> None:
    model = zero_filled().eval()
    rows_seen: list[int] = []
    model.cxr_encoder.register_forward_pre_hook(lambda _m, args: rows_seen.append(len(args[0])))
    batch = make_batch(LAYOUT)
    with torch.no_grad():
        logits = model.predict(batch)
        assert rows_seen == [6]  # every sample, imputed or not
        assert batch.ehr is not None
        explicit = MultiModalBatch(  # EHR-only sample 1 with an explicit zero image
            size=1,
            ehr=batch.ehr[1:2],
            ehr_lengths=batch.ehr_lengths[1:2],  # type: ignore[index]
            ehr_index=torch.zeros(1, dtype=torch.long),
            cxr=torch.zeros(1, 1, IMAGE, IMAGE),
            cxr_index=torch.zeros(1, dtype=torch.long),
        )
        torch.testing.assert_close(model.predict(explicit)[0], logits[1])


def test_zero_filled_serves_batches_missing_a_whole_modality() -> None:
    model = zero_filled().eval()
    with torch.no_grad():
        assert torch.isfinite(model.predict(make_batch("EE"))).all()
        assert torch.isfinite(model.predict(make_batch("CC"))).all()


def test_zero_filled_rejects_images_of_another_size() -> None:
    with pytest.raises(ValueError, match=r"zero-fills 32x32: set image_size"):
        zero_filled()(make_batch("PC", image=64))


@pytest.mark.parametrize("position", range(6))
def test_medfuse_output_does_not_depend_on_the_rest_of_the_batch(position: int) -> None:
    model = medfuse().eval()
    batch = make_batch(LAYOUT)
    with torch.no_grad():
        together = model.predict(batch)[position]
        alone = model.predict(_row(batch, position))[0]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


def test_medfuse_paired_samples_match_the_fusion_module() -> None:
    model = medfuse().eval()
    batch = make_batch(LAYOUT)
    assert batch.ehr is not None and batch.cxr is not None
    with torch.no_grad():
        h_e = model.ehr_encoder(batch.ehr, batch.ehr_lengths)
        h_c = model.cxr_encoder(batch.cxr)
        expected = model.fusion(h_e[[0, 2]], h_c[[0, 1]])  # samples 0 and 2
        single = model.fusion.fuse_tokens(model.fusion.ehr_proj(h_e[[1]])[:, None])  # sample 1
        logits = model.predict(batch)
    torch.testing.assert_close(logits[[0, 2]], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(logits[[1]], single, atol=1e-6, rtol=1e-5)


def test_teacher_sized_medfuse_is_expressible() -> None:
    ehr = build_encoder("lstm", hidden=256, layers=2, dropout=0.3)
    cxr = build_encoder("resnet34")
    fused = MultiHeadStudent(ehr, cxr, 25, fusion="medfuse", fusion_kwargs={"hidden": 512})
    single = ZeroFilledJointModel(ehr, cxr, 25, image_size=224, fusion="medfuse")
    assert count_parameters(fused) > 21e6 and count_parameters(single) > 21e6
