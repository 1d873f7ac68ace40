"""Teacher nodes on tiny synthetic data: learning, determinism, pre-training, the cache and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from teacher_data import (
    TeacherInputs,
    fit_params,
    make_inputs,
    member_params,
    task_params,
)

from mindkd.io.torch_state import state_dict_sha256
from mindkd.mimic.cxr import FINDINGS
from mindkd.models.spec import MemberSpec
from mindkd.pipelines.teachers import nodes
from mindkd.pipelines.teachers.params import (
    CacheParams,
    FitParams,
    ReportParams,
)
from mindkd.training import samples
from mindkd.training.metrics import auroc
from synthetic_stores import widen_to_one_hot


@pytest.fixture(scope="module")
def ehr_teacher(inputs: TeacherInputs) -> tuple[dict[str, torch.Tensor], dict]:
    member = member_params()["small"]
    return nodes.train_ehr_teacher(
        inputs.cohort, inputs.timeseries, member, fit_params(), task_params()
    )


def test_ehr_teacher_beats_chance_on_val(ehr_teacher, inputs: TeacherInputs) -> None:
    weights, history = ehr_teacher
    assert history["monitor"] == "val/auroc"
    assert 1 <= history["best_epoch"] <= len(history["epochs"]) <= 6
    assert history["best_score"] > 0.8
    logits = nodes.predict_ehr_logits(
        weights,
        inputs.cohort,
        inputs.timeseries,
        member_params()["small"],
        CacheParams(device="cpu"),
        task_params(),
    )
    val = inputs.cohort["split"].to_numpy() == "val"
    by_key = dict(zip(logits.keys, logits.logits[:, 0], strict=True))
    scores = np.array([by_key[str(k)] for k in inputs.cohort.loc[val, "stay_id"]])
    assert auroc(inputs.cohort.loc[val, "y"].to_numpy(), scores) == pytest.approx(
        history["best_score"]
    )


def test_same_seed_gives_identical_weights(ehr_teacher, inputs: TeacherInputs) -> None:
    again, _ = nodes.train_ehr_teacher(
        inputs.cohort, inputs.timeseries, member_params()["small"], fit_params(), task_params()
    )
    assert state_dict_sha256(again) == state_dict_sha256(ehr_teacher[0])
    other, _ = nodes.train_ehr_teacher(
        inputs.cohort,
        inputs.timeseries,
        member_params()["small"],
        fit_params(seed=1),
        task_params(),
    )
    assert state_dict_sha256(other) != state_dict_sha256(ehr_teacher[0])


def test_cxr_pretrain_then_finetune_keeps_encoder_and_replaces_head(inputs: TeacherInputs) -> None:
    member = member_params()["dense"]
    pretrained, pre_history = nodes.pretrain_cxr_teacher(
        inputs.image_labels,
        inputs.subject_splits,
        inputs.image_store,
        member,
        fit_params(epochs=2),
        "pretrain_then_finetune",
    )
    assert pretrained["heads.cxr.fc.weight"].shape[0] == len(FINDINGS)
    assert len(pre_history["epochs"]) == 2 and pre_history["recipe"] == "pretrain_then_finetune"
    weights, _ = nodes.finetune_cxr_teacher(
        pretrained,
        inputs.pairs,
        inputs.cohort,
        inputs.image_store,
        member,
        fit_params(epochs=1, lr=1e-12, weight_decay=0.0),
        task_params(),
    )
    assert weights["heads.cxr.fc.weight"].shape[0] == 1
    # With a vanishing learning rate the fine-tuned encoder still holds the pre-trained weights.
    conv = "cxr_encoder.stem.0.weight"
    torch.testing.assert_close(weights[conv], pretrained[conv])
    initial, empty = nodes.pretrain_cxr_teacher(
        inputs.image_labels,
        inputs.subject_splits,
        inputs.image_store,
        member,
        fit_params(epochs=2),
        "finetune_only",
    )
    assert empty == {"recipe": "finetune_only", "epochs": []}
    assert not torch.equal(initial[conv], pretrained[conv])


def test_pretraining_images_exclude_test_subjects(inputs: TeacherInputs) -> None:
    table = samples.pretrain_image_samples(
        inputs.image_labels, inputs.subject_splits, inputs.image_store, FINDINGS
    )
    test_subjects = set(inputs.subject_splits.query("split == 'test'")["subject_id"])
    test_images = set(
        inputs.image_labels.loc[inputs.image_labels["subject_id"].isin(test_subjects), "dicom_id"]
    )
    assert not test_images & set(table["key"])
    assert set(table["split"]) == {"train", "val"}
    assert len(table) == len(inputs.image_labels) - len(test_images)
    assert "other-1" in set(table["key"])  # a subject outside the cohort still pre-trains


def test_image_cache_keys_cover_pairs_and_cxr_only_once(inputs: TeacherInputs) -> None:
    keys = samples.image_cache_keys(inputs.pairs, inputs.cxr_only, inputs.image_store)
    expected = set(inputs.pairs["dicom_id"].dropna()) | set(inputs.cxr_only["dicom_id"])
    assert keys["key"].is_unique and set(keys["key"]) == expected
    assert "other-1" not in expected
    clash = (
        inputs.cxr_only.assign(split="test").iloc[:1].assign(dicom_id=inputs.pairs["dicom_id"][0])
    )
    with pytest.raises(samples.SampleError, match="two different splits"):
        samples.image_cache_keys(inputs.pairs, clash, inputs.image_store)


def test_missing_time_series_is_named() -> None:
    broken = make_inputs()
    cohort = pd.concat([broken.cohort, broken.cohort.iloc[:1].assign(stay_id=1)])
    with pytest.raises(samples.SampleError, match=r"1 cohort stay\(s\) have no row.*\[1\]"):
        samples.ehr_samples(cohort, broken.timeseries, ["y"])


def test_bad_parameters_fail_with_the_key() -> None:
    with pytest.raises(ValidationError, match="does not take \\['hiden'\\]"):
        MemberSpec(encoder="lstm", settings={"hiden": 8})
    with pytest.raises(ValidationError, match="unknown encoder 'resnet9'"):
        MemberSpec(encoder="resnet9")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        FitParams(epochs=2, temprature=2)
    with pytest.raises(ValidationError, match="greater than or equal to 1000"):
        ReportParams(n_bootstrap=100)
    assert FitParams(epochs=2).fit_config().epochs == 2


def test_an_ehr_member_takes_the_width_of_its_store(inputs: TeacherInputs) -> None:
    wide = widen_to_one_hot(inputs.timeseries)  # ehr.categorical: one_hot, 59 columns per hour
    member, cache = member_params()["small"], CacheParams(device="cpu")
    weights, _ = nodes.train_ehr_teacher(
        inputs.cohort, wide, member, fit_params(epochs=1), task_params()
    )
    assert weights["ehr_encoder.rnn.weight_ih_l0"].shape == (4 * 8, 59)
    logits = nodes.predict_ehr_logits(weights, inputs.cohort, wide, member, cache, task_params())
    assert logits.logits.shape == (len(inputs.cohort), 1)
    assert logits.provenance["settings"] == {"hidden": 8, "in_channels": 59}
    with pytest.raises(ValueError, match=r"in_channels=34 .*trained on a store of another width"):
        nodes.predict_ehr_logits(
            weights, inputs.cohort, inputs.timeseries, member, cache, task_params()
        )


class _Stop(Exception):
    """Raised by the spy once it has seen what a teacher would train on."""


def _spy_training(monkeypatch: pytest.MonkeyPatch) -> list[tuple[set, set]]:
    seen: list[tuple[set, set]] = []

    def record(model, train, val, kind, params):
        seen.append((set(train.samples.keys.tolist()), set(val.samples.keys.tolist())))
        raise _Stop

    monkeypatch.setattr(nodes.glue, "train_teacher", record)
    return seen


def _interleaved(table: pd.DataFrame) -> pd.DataFrame:
    """The rows shuffled: splits interleave and keys are out of row order."""
    return table.sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_ehr_teacher_trains_on_train_stays_and_stops_on_val_only(
    inputs: TeacherInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = _interleaved(inputs.cohort)
    seen = _spy_training(monkeypatch)
    with pytest.raises(_Stop):
        nodes.train_ehr_teacher(
            cohort, inputs.timeseries, member_params()["small"], fit_params(), task_params()
        )
    train, val = seen[0]
    assert train == set(cohort.loc[cohort["split"] == "train", "stay_id"])
    assert val == set(cohort.loc[cohort["split"] == "val", "stay_id"])


def test_cxr_finetuning_trains_on_train_images_and_stops_on_val_only(
    inputs: TeacherInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = _interleaved(inputs.pairs)
    member = member_params()["dense"]
    pretrained = nodes.glue.build_teacher(member, len(FINDINGS), seed=0).state_dict()
    seen = _spy_training(monkeypatch)
    with pytest.raises(_Stop):
        nodes.finetune_cxr_teacher(
            pretrained,
            pairs,
            inputs.cohort,
            inputs.image_store,
            member,
            fit_params(),
            task_params(),
        )
    train, val = seen[0]
    paired = pairs[pairs["dicom_id"].notna()]
    assert train == set(paired.loc[paired["split"] == "train", "dicom_id"])
    assert val == set(paired.loc[paired["split"] == "val", "dicom_id"])
