"""Nodes of the distill stage on tiny in-memory data: samples, targets, routing, no-KD, specs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from distill_data import MEMBER_PARAMETERS, MEMBERS, DistillInputs, distill_params, task_params

from mindkd.io.logit_cache import LogitCache
from mindkd.models.spec import build_network
from mindkd.pipelines.distill import nodes
from mindkd.training import students as glue
from mindkd.training.data import collate_multimodal
from mindkd.training.losses import MindLoss
from mindkd.training.samples import SampleError, fingerprint_inputs
from mindkd.training.spec import ModelSpec, StudentTooLargeError
from mindkd.training.targets import targets_for
from synthetic_stores import widen_to_one_hot


def _samples(inputs: DistillInputs) -> pd.DataFrame:
    return nodes.assemble_distill_samples(
        inputs.cohort, inputs.pairs, inputs.timeseries, inputs.image_store, task_params()
    )


def _prepared(inputs: DistillInputs, **overrides: object) -> dict[str, object]:
    params = distill_params(**overrides)
    samples = _samples(inputs)
    train, val, test = nodes.select_distill_samples(samples, params)
    normaliser = nodes.fit_image_normaliser(train, inputs.image_store)
    targets = nodes.read_teacher_targets(
        inputs.cache, samples, inputs.fingerprint, params, task_params()
    )
    sizes = nodes.count_teacher_parameters(inputs.cache)
    return {
        "params": params,
        "train": train,
        "val": val,
        "test": test,
        "normaliser": normaliser,
        "targets": targets,
        "sizes": sizes,
    }


def test_samples_keep_every_stay_with_its_image_kind_and_label(inputs: DistillInputs) -> None:
    samples = _samples(inputs)
    assert len(samples) == len(inputs.cohort)
    assert samples["kind"].value_counts().to_dict() == {"paired": 64, "ehr_only": 32}
    assert samples.loc[samples["kind"] == "ehr_only", "dicom_id"].isna().all()
    merged = samples.merge(inputs.cohort[["stay_id", "y"]], on="stay_id", suffixes=("", "_c"))
    assert (merged["y"] == merged["y_c"]).all() and samples["y"].dtype == np.float32


def test_samples_list_every_disagreement(inputs: DistillInputs) -> None:
    pairs = inputs.pairs.iloc[1:].copy()
    pairs.loc[pairs.index[0], "dicom_id"] = "not-in-store"
    with pytest.raises(
        SampleError,
        match=r"1 cohort stay\(s\) have no row in the pairs table.*not in the image store",
    ):
        nodes.assemble_distill_samples(
            inputs.cohort, pairs, inputs.timeseries, inputs.image_store, task_params()
        )


def test_data_setting_selects_paired_or_all_train_stays(inputs: DistillInputs) -> None:
    samples = _samples(inputs)
    for data, expected in (("paired", {"paired"}), ("partial", {"paired", "ehr_only"})):
        train, val, test = nodes.select_distill_samples(samples, distill_params(data=data))
        assert set(train["kind"]) == set(val["kind"]) == expected
        assert set(train["split"]) == {"train"} and set(val["split"]) == {"val"}
        assert len(test) == 24 and set(test["kind"]) == {"paired", "ehr_only"}  # full test set


def test_image_normaliser_is_fitted_on_train_images_only(inputs: DistillInputs) -> None:
    prepared = _prepared(inputs)
    train = prepared["train"]
    pixels = inputs.image_store.take("images", train["dicom_id"].dropna()) / 255.0
    stats = prepared["normaliser"]
    assert stats["images"] == 32 and stats["image_size"] == 16
    assert stats["mean"] == pytest.approx(pixels.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(pixels.std(), rel=1e-9)


def test_kd_targets_are_the_cached_ensemble_by_key(inputs: DistillInputs) -> None:
    prepared = _prepared(inputs)
    targets = prepared["targets"].set_index("stay_id")
    stay = int(inputs.pairs.dropna(subset=["dicom_id"])["stay_id"].iloc[3])
    dicom = inputs.pairs.set_index("stay_id").loc[stay, "dicom_id"]
    ehr = np.mean([inputs.cache.logits("ehr", m, [stay])[0, 0] for m in MEMBERS["ehr"]])
    cxr = np.mean([inputs.cache.logits("cxr", m, [dicom])[0, 0] for m in MEMBERS["cxr"]])
    assert targets.loc[stay, "ehr_0"] == pytest.approx(ehr, abs=1e-6)
    assert targets.loc[stay, "cxr_0"] == pytest.approx(cxr, abs=1e-6)
    unpaired = int(inputs.pairs.loc[inputs.pairs["dicom_id"].isna(), "stay_id"].iloc[0])
    assert np.isnan(targets.loc[unpaired, "cxr_0"])
    assert prepared["sizes"]["ensembles_total"] == 4 * MEMBER_PARAMETERS


def _without(cache: LogitCache, rows: pd.Series, source: str = "teacher_logits/V/x") -> LogitCache:
    return LogitCache(table=cache.table[~rows], provenance=cache.provenance, source=source)


def test_a_cache_of_another_cohort_is_refused(inputs: DistillInputs) -> None:
    """Every member lacks one stay of the samples: the cache was made for other stays."""
    samples = _samples(inputs)
    table = inputs.cache.table
    stay = str(samples["stay_id"].iloc[0])
    cache = _without(inputs.cache, (table["modality"] == "ehr") & (table["key"] == stay))
    with pytest.raises(
        SampleError, match=r"cache teacher_logits/V/x lacks ehr keys.*re-run teachers"
    ):
        nodes.read_teacher_targets(
            cache, samples, inputs.fingerprint, distill_params(), task_params()
        )


@pytest.mark.parametrize("modality", ["ehr", "cxr"])
def test_a_cache_without_one_members_rows_is_refused(inputs: DistillInputs, modality: str) -> None:
    """Before: the student distilled silently from the members left (an INFO line only)."""
    samples = _samples(inputs)
    member = MEMBERS[modality][1]
    cache = _without(inputs.cache, inputs.cache.table["member"] == member)
    assert cache.members(modality) == [MEMBERS[modality][0]]
    expected = (
        rf"cache teacher_logits/V/x does not fit: {modality} member '{member}' has no rows"
        r".*Re-run teachers to rebuild it: kedro run --pipelines teachers --namespaces ihm"
    )
    for members in (None, MEMBERS):  # the ensemble of its provenance, of the slots
        with pytest.raises(SampleError, match=expected):
            nodes.read_teacher_targets(
                cache, samples, inputs.fingerprint, distill_params(), task_params(), members
            )


def test_a_member_covering_part_of_the_keys_is_refused(inputs: DistillInputs) -> None:
    """The first CXR member also has an image no distill sample uses, the second not: the
    samples' lookups would all succeed, yet the ensemble is incomplete."""
    samples = _samples(inputs)
    table = inputs.cache.table
    first = table[(table["modality"] == "cxr") & (table["member"] == MEMBERS["cxr"][0])]
    extra = first.iloc[:1].assign(key="img-unused")
    cache = LogitCache(
        table=pd.concat([table, extra], ignore_index=True),
        provenance=inputs.cache.provenance,
        source="teacher_logits/V/x",
    )
    with pytest.raises(
        SampleError,
        match=rf"cxr member '{MEMBERS['cxr'][1]}' has logits for only 64 of the 65 cxr keys",
    ):
        nodes.read_teacher_targets(
            cache, samples, inputs.fingerprint, distill_params(), task_params(), MEMBERS
        )


def test_a_cache_of_other_member_slots_is_refused(inputs: DistillInputs) -> None:
    samples = _samples(inputs)
    slots = {"ehr": (*MEMBERS["ehr"], "gru_big"), "cxr": MEMBERS["cxr"][:1]}
    with pytest.raises(SampleError) as caught:
        nodes.read_teacher_targets(
            inputs.cache, samples, inputs.fingerprint, distill_params(), task_params(), slots
        )
    message = str(caught.value)
    assert "ehr member 'gru_big' has no rows (the ensemble of tasks.TEACHER_MEMBERS" in message
    assert f"it holds cxr member '{MEMBERS['cxr'][1]}', which is not in the ensemble" in message


def test_specs_share_the_student_and_differ_only_where_they_should(inputs: DistillInputs) -> None:
    p = _prepared(inputs)
    args = (p["params"], task_params(), p["sizes"], p["normaliser"], inputs.timeseries)
    mind, no_kd = nodes.specify_mind(*args), nodes.specify_no_kd(*args)
    zero, medfuse = nodes.specify_zero_filled(*args), nodes.specify_medfuse(*args)
    assert mind["loss"]["alpha"] == 0.5 and no_kd["loss"]["alpha"] == 0.0
    same = {k for k in mind if mind[k] == no_kd[k]}
    assert set(mind) - same == {"variant", "loss"}
    assert (zero["architecture"], medfuse["architecture"]) == ("zero_filled", "medfuse")
    assert zero["loss"]["alpha"] == medfuse["loss"]["alpha"] == 0.0
    assert mind["teacher_fraction"] == pytest.approx(mind["parameters"] / (4 * MEMBER_PARAMETERS))


def test_a_student_over_the_size_budget_fails(inputs: DistillInputs) -> None:
    p = _prepared(inputs)
    sizes = {**p["sizes"], "ensembles_total": 100_000}
    with pytest.raises(StudentTooLargeError, match="max_teacher_fraction"):
        nodes.specify_mind(p["params"], task_params(), sizes, p["normaliser"], inputs.timeseries)
    # the teacher-sized baseline is not held to the student budget
    assert nodes.specify_medfuse(
        p["params"], task_params(), sizes, p["normaliser"], inputs.timeseries
    )


def _step_grads(
    spec: ModelSpec,
    batch_samples: pd.DataFrame,
    inputs: DistillInputs,
    targets: pd.DataFrame,
    forbid_cxr: bool = False,
) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """One training step as the pipeline takes it: dataset, collate, model, MindLoss, backward."""
    torch.manual_seed(0)
    model = build_network(spec).train()
    if forbid_cxr:
        model.cxr_encoder.register_forward_pre_hook(lambda *_: pytest.fail("the CXR encoder ran"))
    dataset = glue.build_dataset(
        batch_samples, spec, inputs.timeseries, inputs.image_store, targets
    )
    batch, labels = collate_multimodal([dataset[i] for i in range(len(dataset))])
    loss = MindLoss(spec.kind, spec.loss)(model(batch), labels["labels"], labels["teacher"])
    loss["loss"].backward()
    return model, loss


def _grad_norm(module: torch.nn.Module) -> float:
    return float(sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None))


def test_an_ehr_only_sample_never_touches_the_cxr_encoder(inputs: DistillInputs) -> None:
    p = _prepared(inputs)
    spec = ModelSpec.model_validate(
        nodes.specify_mind(
            p["params"], task_params(), p["sizes"], p["normaliser"], inputs.timeseries
        )
    )
    train = p["train"]
    ehr_only = train[train["kind"] == "ehr_only"].head(6)
    model, loss = _step_grads(spec, ehr_only, inputs, p["targets"], forbid_cxr=True)
    assert {k for k in loss if k.startswith("task/")} == {"task/ehr"}
    assert _grad_norm(model.ehr_encoder) > 0
    assert all(p.grad is None for p in model.cxr_encoder.parameters())
    assert all(p.grad is None for p in model.fusion.parameters())
    paired = train[train["kind"] == "paired"].head(6)
    model, loss = _step_grads(spec, paired, inputs, p["targets"])
    assert {"task/ehr", "task/cxr", "task/fused", "kd/cxr"} <= set(loss)
    assert _grad_norm(model.cxr_encoder) > 0 and _grad_norm(model.fusion) > 0


def test_no_kd_is_plain_training_whatever_the_targets(inputs: DistillInputs) -> None:
    p = _prepared(inputs, fit={**distill_params().fit.model_dump(), "epochs": 1})
    spec = nodes.specify_no_kd(
        p["params"], task_params(), p["sizes"], p["normaliser"], inputs.timeseries
    )
    args = (spec, p["train"], p["val"])
    stores = (inputs.timeseries, inputs.image_store)
    weights, history = nodes.train_model(*args, p["targets"], *stores)
    scrambled = p["targets"].assign(ehr_0=99.0, cxr_0=-99.0)
    again, _ = nodes.train_model(*args, scrambled, *stores)
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    record = history["epochs"][0]
    assert "train/kd" in record and record["train/kd"] == 0.0  # targets never reach the loss
    assert record["train/loss"] == pytest.approx(record["train/task"])


def test_every_variant_takes_the_width_of_the_store_and_records_it(inputs: DistillInputs) -> None:
    p = _prepared(inputs)
    wide = widen_to_one_hot(inputs.timeseries)  # ehr.categorical: one_hot
    args = (p["params"], task_params(), p["sizes"], p["normaliser"])
    specify = (
        nodes.specify_mind,
        nodes.specify_no_kd,
        nodes.specify_zero_filled,
        nodes.specify_medfuse,
    )
    for make in specify:
        card = make(*args, wide)
        assert card["ehr_encoder"]["settings"]["in_channels"] == 59, make.__name__
        assert card["ehr_input"]["encoding"] == "one_hot"
        assert card["ehr_input"]["features"][:3] == [
            "capillary_refill=0",
            "capillary_refill=1",
            "dbp",
        ]
        assert len(card["ehr_input"]["features"]) == 59
        spec = ModelSpec.model_validate(card)
        model = build_network(spec)
        assert model.ehr_encoder.in_channels == spec.ehr_channels == 59
        predictions = nodes.predict_test_set(
            model.state_dict(), card, p["test"], wide, inputs.image_store
        )
        assert set(predictions["stay_id"]) == set(p["test"]["stay_id"])
        narrow = make(*args, inputs.timeseries)
        assert narrow["ehr_encoder"]["settings"]["in_channels"] == 34
        assert narrow["ehr_input"]["encoding"] == "continuous"


def test_a_store_of_another_width_than_the_spec_is_refused(inputs: DistillInputs) -> None:
    p = _prepared(inputs)
    card = nodes.specify_mind(
        p["params"], task_params(), p["sizes"], p["normaliser"], widen_to_one_hot(inputs.timeseries)
    )
    weights = build_network(ModelSpec.model_validate(card)).state_dict()
    with pytest.raises(
        ValueError,
        match=r"EHR encoder takes 59 columns per hour \(its spec, ehr.categorical: one_hot\) "
        r"but ihm.timeseries has 34 \(ehr.categorical: continuous\)",
    ):
        nodes.predict_test_set(weights, card, p["test"], inputs.timeseries, inputs.image_store)
    conflicting = distill_params(
        student={
            "ehr_encoder": {"name": "gru", "settings": {"hidden": 8, "in_channels": 34}},
            "cxr_encoder": {"name": "resnet18", "settings": {"width": 0.125, "stem": "small"}},
        }
    )
    with pytest.raises(ValueError, match=r"in_channels=34 but the data has 59 columns per hour"):
        nodes.specify_mind(
            conflicting,
            task_params(),
            p["sizes"],
            p["normaliser"],
            widen_to_one_hot(inputs.timeseries),
        )


def _stale(cache: LogitCache, **changes: object) -> LogitCache:
    return LogitCache(
        table=cache.table.assign(**changes),
        provenance=dict(cache.provenance),
        source="teacher_logits/V/x",
    )


def test_a_cache_whose_keys_sit_in_other_splits_is_refused(inputs: DistillInputs) -> None:
    """The issue's case: every cached row marked train. With the fingerprint still matching,
    the per-key split check alone stops it (a student would distil test subjects' targets from
    teachers that trained on them)."""
    samples = _samples(inputs)
    cache = _stale(inputs.cache, split="train")
    with pytest.raises(
        SampleError,
        match=r"cache teacher_logits/V/x is stale: 48 ehr key\(s\) have another split in the "
        r"cache than now.*; 32 cxr key\(s\).*kedro run --pipelines teachers --namespaces ihm",
    ):
        nodes.read_teacher_targets(
            cache, samples, inputs.fingerprint, distill_params(), task_params()
        )


def test_a_cache_of_other_inputs_is_refused(inputs: DistillInputs) -> None:
    """A new split seed moved one subject from train to test after the teachers ran: the cohort's
    and the pairs' digests differ from the cache's, and so does that stay's split."""
    cohort = inputs.cohort.copy()
    pairs = inputs.pairs.copy()
    cohort.loc[0, "split"] = pairs.loc[0, "split"] = "test"
    samples = nodes.assemble_distill_samples(
        cohort, pairs, inputs.timeseries, inputs.image_store, task_params()
    )
    now = fingerprint_inputs(cohort, inputs.timeseries, pairs, inputs.cxr_only, inputs.image_store)
    with pytest.raises(
        SampleError,
        match=r"its teachers saw other inputs: cohort \(96 rows then, 96 now\), pairs .*; "
        r"1 ehr key\(s\) have another split in the cache than now, e\.g\. \[30000\]; "
        r"1 cxr key\(s\)",
    ):
        nodes.read_teacher_targets(inputs.cache, samples, now, distill_params(), task_params())


def test_a_cache_without_an_input_fingerprint_is_refused(inputs: DistillInputs) -> None:
    samples = _samples(inputs)
    cache = _stale(inputs.cache)
    del cache.provenance["inputs"]
    with pytest.raises(SampleError, match=r"it records no fingerprint of the inputs"):
        nodes.read_teacher_targets(
            cache, samples, inputs.fingerprint, distill_params(), task_params()
        )


def test_kd_targets_follow_the_stay_not_the_row(inputs: DistillInputs) -> None:
    """Samples with interleaved splits and ids out of row order get their own stay's targets."""
    samples = _samples(inputs)
    targets = nodes.read_teacher_targets(
        inputs.cache, samples, inputs.fingerprint, distill_params(), task_params()
    )
    shuffled = samples.sample(frac=1.0, random_state=5).reset_index(drop=True)
    assert not shuffled["stay_id"].is_monotonic_increasing
    assert shuffled["split"].iloc[:10].nunique() > 1  # splits interleave
    looked_up = targets_for(targets, shuffled, 1)
    expected = targets.set_index("stay_id").loc[shuffled["stay_id"], "ehr_0"].to_numpy()
    np.testing.assert_array_equal(looked_up["ehr"][:, 0], expected)
    own = inputs.cache.logits("ehr", MEMBERS["ehr"][0], shuffled["stay_id"])[:, 0]
    assert np.corrcoef(looked_up["ehr"][:, 0], own)[0, 1] > 0.9  # the stay's own teachers


def test_a_stay_in_another_split_in_pairs_than_in_cohort_is_refused(inputs: DistillInputs) -> None:
    pairs = inputs.pairs.copy()
    pairs.loc[5, "split"] = "test" if pairs.loc[5, "split"] != "test" else "train"
    with pytest.raises(
        SampleError, match=r"1 stay\(s\) have another split in pairs than in cohort"
    ):
        nodes.assemble_distill_samples(
            inputs.cohort, pairs, inputs.timeseries, inputs.image_store, task_params()
        )
