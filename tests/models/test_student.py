"""The multi-head student and the unimodal classifier: battery, routing, alignment."""

from __future__ import annotations

import pytest
import torch
from model_helpers import (
    make_batch,
    params_with_grad,
    params_without_grad,
    random_projection_loss,
    with_garbage_padding,
)
from torch import Tensor, nn

from mindkd.models import (
    Encoder,
    HeadOutput,
    MultiHeadStudent,
    MultiModalBatch,
    UnimodalClassifier,
    build_encoder,
    count_parameters,
    list_fusions,
    paired_rows,
    route,
)

K = 3
LAYOUT = "PEPCEC"  # paired 0, 2; EHR only 1, 4; CXR only 3, 5


def tiny_ehr() -> Encoder:
    return build_encoder("lstm", hidden=8)


def tiny_cxr() -> Encoder:
    return build_encoder("resnet18", width=0.125, stem="small")


def tiny_student(fusion: str = "concat", seed: int = 0, **kwargs: object) -> MultiHeadStudent:
    torch.manual_seed(seed)
    return MultiHeadStudent(tiny_ehr(), tiny_cxr(), K, fusion=fusion, **kwargs)  # type: ignore[arg-type]


def as_dense(out: HeadOutput, size: int) -> Tensor:
    """Scatter head logits to ``(size, K)``, NaN where the head does not apply."""
    dense = torch.full((size, out.logits.shape[1]), float("nan"))
    dense[out.index] = out.logits.detach()
    return dense


def total_loss(outputs: dict[str, HeadOutput]) -> Tensor:
    return sum(
        (random_projection_loss(o.logits, seed=i) for i, o in enumerate(outputs.values())),
        torch.tensor(0.0),
    )


@pytest.mark.parametrize("fusion", list_fusions())
def test_student_battery(fusion: str) -> None:
    student = tiny_student(fusion, head_dropout=0.1).train()
    batch = make_batch(LAYOUT)
    outputs = student(batch)
    assert set(outputs) == {"ehr", "cxr", "fused"}
    assert outputs["ehr"].index.tolist() == [0, 1, 2, 4]
    assert outputs["cxr"].index.tolist() == [0, 2, 3, 5]
    assert sorted(outputs["fused"].index.tolist()) == [0, 2]
    for name, out in outputs.items():
        assert out.logits.shape == (out.index.numel(), K), name
        assert torch.isfinite(out.logits).all(), name
    total_loss(outputs).backward()
    assert params_without_grad(student) == []
    assert student.predict(batch).shape == (len(LAYOUT), K)


@pytest.mark.parametrize(
    ("ehr_name", "cxr_name"), [("transformer", "densenet_small"), ("tcn", "resnet50")]
)
def test_student_takes_any_encoder_pair(ehr_name: str, cxr_name: str) -> None:
    ehr = build_encoder(
        ehr_name, **({"d_model": 16, "heads": 2} if ehr_name == "transformer" else {})
    )
    cxr = build_encoder(cxr_name, **({"width": 0.0625} if cxr_name == "resnet50" else {}))
    student = MultiHeadStudent(ehr, cxr, K, fusion="gated").train()
    outputs = student(make_batch(LAYOUT))
    total_loss(outputs).backward()
    assert params_without_grad(student) == []


@pytest.mark.parametrize("fusion", list_fusions())
def test_student_ignores_ehr_padding(fusion: str) -> None:
    student = tiny_student(fusion).eval()
    batch = make_batch(LAYOUT)
    assert batch.ehr is not None and batch.ehr_lengths is not None
    noisy = make_batch(LAYOUT)
    noisy.ehr = with_garbage_padding(batch.ehr, batch.ehr_lengths)
    with torch.no_grad():
        clean, dirty = student.predict(batch), student.predict(noisy)
    torch.testing.assert_close(dirty, clean, atol=1e-5, rtol=1e-5)


def test_one_modality_runs_only_its_own_encoder() -> None:
    student = tiny_student()
    seen: dict[str, list[int]] = {"ehr": [], "cxr": []}
    for name in ("ehr", "cxr"):
        getattr(student, f"{name}_encoder").register_forward_pre_hook(
            lambda _module, args, name=name: seen[name].append(args[0].shape[0])
        )
    student(make_batch(LAYOUT))
    assert seen == {"ehr": [4], "cxr": [4]}  # 2 paired + 2 unimodal each; never a filler row
    seen.update(ehr=[], cxr=[])
    outputs = student(make_batch("EE"))
    assert set(outputs) == {"ehr"} and seen == {"ehr": [2], "cxr": []}
    seen.update(ehr=[], cxr=[])
    outputs = student(make_batch("CCC"))
    assert set(outputs) == {"cxr"} and seen == {"ehr": [], "cxr": [3]}
    assert set(student(make_batch("EC"))) == {"ehr", "cxr"}  # no pair, no fused head


def _grads_after(student: MultiHeadStudent, loss: Tensor) -> tuple[list[str], list[str]]:
    student.zero_grad(set_to_none=True)
    loss.backward()
    assert student.ehr_encoder is not None and student.cxr_encoder is not None
    return params_with_grad(student.ehr_encoder), params_with_grad(student.cxr_encoder)


@pytest.mark.parametrize("fusion", list_fusions())
@pytest.mark.parametrize("routing", ["fused", "mean"])
def test_unimodal_samples_send_gradient_only_to_their_encoder(fusion: str, routing: str) -> None:
    student = tiny_student(fusion).train()
    batch = make_batch(LAYOUT)
    n_ehr = len(list(student.ehr_encoder.parameters()))  # type: ignore[union-attr]
    n_cxr = len(list(student.cxr_encoder.parameters()))  # type: ignore[union-attr]

    ehr_grads, cxr_grads = _grads_after(student, student.predict(batch, routing)[1].sum())
    assert (len(ehr_grads), cxr_grads) == (n_ehr, [])  # EHR-only sample 1
    ehr_grads, cxr_grads = _grads_after(student, student.predict(batch, routing)[3].sum())
    assert (ehr_grads, len(cxr_grads)) == ([], n_cxr)  # CXR-only sample 3
    ehr_grads, cxr_grads = _grads_after(student, student.predict(batch, routing)[0].sum())
    assert (len(ehr_grads), len(cxr_grads)) == (n_ehr, n_cxr)  # paired sample 0


def _permuted(
    batch: MultiModalBatch, perm: Tensor, ehr_order: Tensor, cxr_order: Tensor
) -> MultiModalBatch:
    """The same samples at positions ``perm[i]``, with EHR and CXR rows stored in other orders."""
    assert batch.ehr is not None and batch.ehr_index is not None and batch.ehr_lengths is not None
    assert batch.cxr is not None and batch.cxr_index is not None
    return MultiModalBatch(
        size=batch.size,
        ehr=batch.ehr[ehr_order],
        ehr_lengths=batch.ehr_lengths[ehr_order],
        ehr_index=perm[batch.ehr_index[ehr_order]],
        cxr=batch.cxr[cxr_order],
        cxr_index=perm[batch.cxr_index[cxr_order]],
    )


@pytest.mark.parametrize("fusion", list_fusions())
def test_fused_head_is_aligned_under_permutation(fusion: str) -> None:
    student = tiny_student(fusion).eval()
    batch = make_batch(LAYOUT)
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    shuffled = _permuted(batch, perm, torch.tensor([3, 1, 0, 2]), torch.tensor([1, 3, 0, 2]))
    with torch.no_grad():
        out, out_p = student(batch), student(shuffled)
        pred, pred_p = student.predict(batch), student.predict(shuffled)
    assert sorted(out_p["fused"].index.tolist()) == sorted(perm[[0, 2]].tolist())
    for head in ("ehr", "cxr", "fused"):
        dense, dense_p = as_dense(out[head], 6), as_dense(out_p[head], 6)
        torch.testing.assert_close(dense_p[perm], dense, equal_nan=True, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred_p[perm], pred, atol=1e-5, rtol=1e-5)


def test_fused_output_matches_fusion_of_the_same_samples_features() -> None:
    student = tiny_student("concat").eval()
    batch = make_batch(LAYOUT)
    assert student.ehr_encoder is not None and student.cxr_encoder is not None
    assert student.fusion is not None and batch.ehr is not None and batch.cxr is not None
    with torch.no_grad():
        out = student(batch)
        h_e = student.ehr_encoder.forward_features(batch.ehr, batch.ehr_lengths)
        h_c = student.cxr_encoder.forward_features(batch.cxr)
        # sample 0 is EHR row 0 and CXR row 0; sample 2 is EHR row 2 and CXR row 1
        expected = student.fusion(h_e[[0, 2]], h_c[[0, 1]])
    fused = as_dense(out["fused"], 6)
    torch.testing.assert_close(fused[[0, 2]], expected)


def test_paired_rows_is_the_aligned_intersection() -> None:
    ehr_index = torch.tensor([5, 0, 3, 7, 2])
    cxr_index = torch.tensor([2, 6, 5, 1, 7])
    e, c = paired_rows(ehr_index, cxr_index, size=8)
    assert e.tolist() == [0, 3, 4]
    assert c.tolist() == [2, 4, 0]
    assert torch.equal(ehr_index[e], cxr_index[c])
    e, c = paired_rows(torch.tensor([0, 1]), torch.tensor([2]), size=3)
    assert e.numel() == 0 and c.numel() == 0


def test_routing_picks_the_head_of_each_sample() -> None:
    student = tiny_student("concat").eval()
    batch = make_batch(LAYOUT)
    with torch.no_grad():
        out = student(batch)
        fused, mean = student.predict(batch, "fused"), student.predict(batch, "mean")
    ehr, cxr, fus = (as_dense(out[h], 6) for h in ("ehr", "cxr", "fused"))
    torch.testing.assert_close(fused[[0, 2]], fus[[0, 2]])
    torch.testing.assert_close(fused[[1, 4]], ehr[[1, 4]])
    torch.testing.assert_close(fused[[3, 5]], cxr[[3, 5]])
    torch.testing.assert_close(mean[[0, 2]], (ehr + cxr + fus)[[0, 2]] / 3)
    torch.testing.assert_close(mean[[1, 4, 3, 5]], fused[[1, 4, 3, 5]])
    with pytest.raises(ValueError, match="routing must be one of"):
        student.predict(batch, "max")  # type: ignore[arg-type]


def test_route_marks_uncovered_samples_nan() -> None:
    out = {"ehr": HeadOutput(torch.ones(2, 2), torch.tensor([0, 2]))}
    routed = route(out, size=3, num_outputs=2)
    assert torch.isnan(routed[1]).all() and torch.equal(routed[[0, 2]], torch.ones(2, 2))
    assert torch.isnan(route({}, size=2, num_outputs=2, routing="mean")).all()


def test_late_fusion_is_the_mean_of_the_unimodal_heads() -> None:
    student = tiny_student("late").eval()
    assert student.fusion is not None and count_parameters(student.fusion) == 0
    with torch.no_grad():
        out = student(make_batch(LAYOUT))
    ehr, cxr, fused = (as_dense(out[h], 6) for h in ("ehr", "cxr", "fused"))
    torch.testing.assert_close(fused[[0, 2]], (ehr + cxr)[[0, 2]] / 2)


def test_gated_fusion_gates_sum_to_one() -> None:
    student = tiny_student("gated", fusion_kwargs={"hidden": 5})
    gates = student.fusion.gates(torch.randn(4, 8), torch.randn(4, 64))  # type: ignore[union-attr,operator]
    assert gates.shape == (4, 2, 5)
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(4, 5))


def test_same_seed_same_student() -> None:
    batch = make_batch(LAYOUT)
    preds = []
    for _ in range(2):
        with torch.no_grad():
            preds.append(tiny_student("medfuse", seed=3).eval().predict(batch))
    assert torch.equal(preds[0], preds[1])


@pytest.mark.parametrize("modality", ["ehr", "cxr"])
def test_unimodal_classifier_battery(modality: str) -> None:
    torch.manual_seed(0)
    teacher = UnimodalClassifier(tiny_ehr() if modality == "ehr" else tiny_cxr(), K).train()
    batch = make_batch(LAYOUT)
    outputs = teacher(batch)
    assert set(outputs) == {modality}
    expected_index = [0, 1, 2, 4] if modality == "ehr" else [0, 2, 3, 5]
    assert outputs[modality].index.tolist() == expected_index
    assert outputs[modality].logits.shape == (4, K)
    assert torch.isfinite(outputs[modality].logits).all()
    total_loss(outputs).backward()
    assert params_without_grad(teacher) == []
    routed = teacher.predict(batch)
    other = [i for i in range(6) if i not in expected_index]
    assert torch.isnan(routed[other]).all() and torch.isfinite(routed[expected_index]).all()
    assert (
        count_parameters(teacher)
        == count_parameters(teacher.encoder) + (teacher.encoder.num_features + 1) * K
    )


def test_teacher_weights_load_into_the_student_branch() -> None:
    torch.manual_seed(0)
    teacher = UnimodalClassifier(tiny_ehr(), K)
    student = tiny_student()
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    assert unexpected == []
    assert all(k.startswith(("cxr_encoder.", "heads.cxr.", "fusion.")) for k in missing)
    batch = make_batch("EE")
    with torch.no_grad():
        torch.testing.assert_close(
            student.eval()(batch)["ehr"].logits, teacher.eval()(batch)["ehr"].logits
        )


def test_student_with_one_encoder_has_no_fused_head() -> None:
    student = MultiHeadStudent(None, tiny_cxr(), K)
    assert student.fusion is None and set(student.heads) == {"cxr"}
    assert set(student(make_batch(LAYOUT))) == {"cxr"}


def test_constructor_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="the ehr encoder slot got a cxr encoder"):
        MultiHeadStudent(tiny_cxr(), tiny_cxr(), K)
    with pytest.raises(ValueError, match="at least one encoder"):
        MultiHeadStudent(None, None, K)
    with pytest.raises(ValueError, match="unknown fusion 'sum'"):
        MultiHeadStudent(tiny_ehr(), tiny_cxr(), K, fusion="sum")
    with pytest.raises(ValueError, match="is not an Encoder"):
        UnimodalClassifier(nn.Linear(2, 2), K)  # type: ignore[arg-type]
    batch = make_batch("PE")
    batch.ehr_index = None
    with pytest.raises(ValueError, match=r"batch\.ehr has 2 rows; batch\.ehr_index does not"):
        tiny_student()(batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fusion", list_fusions())
def test_student_runs_on_cuda_like_on_cpu(fusion: str) -> None:
    student = tiny_student(fusion).eval()
    batch = make_batch(LAYOUT)
    with torch.no_grad():
        cpu = student.predict(batch)
        gpu = student.to("cuda").predict(batch.to("cuda"))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
