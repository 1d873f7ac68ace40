"""The student behind MLflow's pyfunc interface: saved, loaded back, and checked against the torch
module's own heads on the same stays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

import mindkd
from mindkd.models import MultiModalBatch, list_fusions
from mindkd.models.spec import build_network
from mindkd.serving import ServingSpec, StayInputError, StudentPyfunc, save_student
from mindkd.tasks import TaskDefinition
from mindkd.training.spec import ModelSpec
from tiny_student import IMAGE, NORMALISER, distill_params, stays, student_card, trained_weights


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    return student_card()


@pytest.fixture(scope="module")
def weights(card: dict[str, Any]) -> dict[str, torch.Tensor]:
    return trained_weights(card)


@pytest.fixture(scope="module")
def saved(card: dict[str, Any], weights: dict[str, torch.Tensor], tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pyfunc") / "student"
    save_student(path, StudentPyfunc(card, weights))
    return path


def _reference(card: dict[str, Any], weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The distill stage's own network with the weights: what the served model must reproduce."""
    model = build_network(ModelSpec.model_validate(card))
    model.load_state_dict(weights)
    return model.eval()


def _head(model: torch.nn.Module, row: pd.Series, head: str) -> float:
    """Sigmoid of one head of ``model`` on one stay, batch of one, built by hand."""
    ehr = torch.as_tensor(np.asarray(row["timeseries"], dtype=np.float32))[None]  # (1, L, 34)
    batch = MultiModalBatch(
        size=1, ehr=ehr, ehr_lengths=torch.tensor([ehr.shape[1]]), ehr_index=torch.tensor([0])
    )
    if row["image"] is not None:
        pixels = torch.as_tensor(row["image"], dtype=torch.float32) / 255.0
        batch.cxr = ((pixels - NORMALISER.mean) / NORMALISER.std)[None, None]  # (1, 1, S, S)
        batch.cxr_index = torch.tensor([0])
    with torch.no_grad():
        return float(torch.sigmoid(model(batch)[head].logits[0, 0]))


def test_loaded_model_serves_paired_stays_by_the_fused_head_and_ehr_only_by_the_ehr_head(
    saved: Path, card: dict[str, Any], weights: dict[str, torch.Tensor]
) -> None:
    frame = stays(6, paired=[True, False, True, False, False, True])
    loaded = mlflow.pyfunc.load_model(str(saved))
    out = loaded.predict(frame)

    assert list(out.columns) == ["stay_id", "head", "y"]
    assert list(out["stay_id"]) == list(frame["stay_id"])
    assert list(out["head"]) == ["fused", "ehr", "fused", "ehr", "ehr", "fused"]
    assert out["y"].between(0.0, 1.0).all() and out["y"].nunique() == 6
    reference = _reference(card, weights)
    for i, row in frame.iterrows():
        expected = _head(reference, row, out.loc[i, "head"])
        assert out.loc[i, "y"] == pytest.approx(expected, abs=1e-6), i


def test_ehr_only_stays_need_no_image_and_never_run_the_cxr_encoder(saved: Path) -> None:
    frame = stays(4, paired=[True, False, True, False])
    loaded = mlflow.pyfunc.load_model(str(saved))
    mixed = loaded.predict(frame)
    student = loaded.unwrap_python_model().model
    calls: list[int] = []
    hook = student.cxr_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        ehr_only = frame.loc[[1, 3], ["stay_id", "timeseries"]]  # no image column at all
        alone = loaded.predict(ehr_only)
    finally:
        hook.remove()
    assert calls == []
    assert list(alone["head"]) == ["ehr", "ehr"]
    np.testing.assert_allclose(alone["y"], mixed.loc[[1, 3], "y"], rtol=0, atol=1e-6)


def test_length_column_reads_only_the_observed_hours(saved: Path) -> None:
    frame = stays(2, paired=[False, True])
    padded = frame.copy()
    padded["length"] = [len(t) for t in frame["timeseries"]]
    padded["timeseries"] = [
        np.vstack([t, np.full((5, t.shape[1]), 7.0)]) for t in frame["timeseries"]
    ]
    loaded = mlflow.pyfunc.load_model(str(saved))
    np.testing.assert_allclose(loaded.predict(padded)["y"], loaded.predict(frame)["y"], atol=1e-6)
    as_lists = frame.assign(
        timeseries=[t.tolist() for t in frame["timeseries"]],
        image=[None if i is None else i.tolist() for i in frame["image"]],
    )  # what `mlflow models serve` receives as JSON records
    np.testing.assert_allclose(loaded.predict(as_lists)["y"], loaded.predict(frame)["y"], atol=1e-6)


def test_model_directory_holds_the_weights_the_spec_the_code_and_a_signature(
    saved: Path, card: dict[str, Any], weights: dict[str, torch.Tensor]
) -> None:
    stored = torch.load(saved / "artifacts" / "weights.pt", weights_only=True)
    assert stored.keys() == weights.keys()
    assert all(torch.equal(stored[k], weights[k]) for k in weights)
    assert json.loads((saved / "artifacts" / "spec.json").read_text()) == card
    assert (saved / "code" / "mindkd" / "serving" / "pyfunc.py").is_file()
    assert not (saved / "python_model.pkl").exists()  # models from code: nothing to unpickle
    requirements = (saved / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements
    info = mlflow.models.Model.load(str(saved))
    assert info.signature.inputs.input_names() == ["stay_id", "timeseries", "length", "image"]
    assert info.signature.inputs.required_input_names() == ["timeseries"]
    assert info.signature.outputs.input_names() == ["stay_id", "head", "y"]
    example = info.load_input_example(str(saved))  # also served as serving_input_example.json
    out = mlflow.pyfunc.load_model(str(saved)).predict(example)
    assert list(out["head"]) == ["ehr"] and 0.0 < out.loc[0, "y"] < 1.0


@pytest.mark.slow
def test_a_fresh_python_without_the_project_on_its_path_loads_and_predicts(
    saved: Path, tmp_path: Path
) -> None:
    frame = stays(3, paired=[True, False, True])
    frame.to_pickle(tmp_path / "stays.pkl")
    src = str(Path(mindkd.__file__).resolve().parents[1])
    script = f"""
import sys
sys.path = [p for p in sys.path if p.rstrip("/") != {src!r}]
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model({str(saved)!r})
import mindkd
assert mindkd.__file__.startswith({str(saved)!r}), mindkd.__file__
model.predict(pd.read_pickle({str(tmp_path / "stays.pkl")!r})).to_pickle({str(tmp_path / "out.pkl")!r})
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = mlflow.pyfunc.load_model(str(saved)).predict(frame)
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "out.pkl"), expected)


def test_mean_routing_and_multiclass_softmax() -> None:
    task = TaskDefinition(name="toy", kind="multiclass", labels=("a", "b", "c"), window="stay")
    card = student_card(task, distill_params(routing="mean"))
    weights = trained_weights(card, seed=1)
    served = StudentPyfunc(card, weights)
    frame = stays(3, paired=[True, False, True])
    out = served.predict(None, frame)
    assert list(out.columns) == ["stay_id", "head", "a", "b", "c"]
    assert list(out["head"]) == ["mean", "ehr", "mean"]
    probs = out[["a", "b", "c"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    reference = _reference(card, weights)
    row = frame.iloc[0]
    ehr = torch.as_tensor(row["timeseries"])[None]
    pixels = (torch.as_tensor(row["image"], dtype=torch.float32) / 255.0 - NORMALISER.mean) / (
        NORMALISER.std
    )
    batch = MultiModalBatch(1, ehr, torch.tensor([ehr.shape[1]]), torch.tensor([0]))
    batch.cxr, batch.cxr_index = pixels[None, None], torch.tensor([0])
    with torch.no_grad():
        heads = reference(batch)
    mean_logits = torch.stack([heads[h].logits[0] for h in ("ehr", "cxr", "fused")]).mean(0)
    np.testing.assert_allclose(probs[0], torch.softmax(mean_logits, 0).numpy(), atol=1e-6)


@pytest.mark.parametrize("fusion", list_fusions())
def test_serving_builds_the_network_the_distill_stage_builds(fusion: str) -> None:
    card = student_card(params=distill_params(fusion=fusion, fusion_settings={}))
    torch.manual_seed(0)
    distill = build_network(ModelSpec.model_validate(card)).state_dict()
    served = build_network(ServingSpec.model_validate(card)).state_dict()
    assert [(k, v.shape) for k, v in served.items()] == [(k, v.shape) for k, v in distill.items()]


def test_only_the_multi_head_student_is_served() -> None:
    with pytest.raises(ValidationError, match="architecture"):
        ServingSpec.model_validate(student_card(variant="zero_filled"))
    with pytest.raises(ValueError, match="both spec and weights"):
        StudentPyfunc(student_card())


def test_bad_stays_are_reported_together(card: dict[str, Any], weights) -> None:
    served = StudentPyfunc(card, weights)
    frame = stays(4, paired=[True, False, True, False])
    frame.at[0, "timeseries"] = np.zeros((3, 17))
    frame.at[1, "timeseries"] = None
    frame.at[2, "image"] = np.zeros((IMAGE + 1, IMAGE), dtype=np.uint8)
    frame["length"] = [None, None, None, 99]
    with pytest.raises(StayInputError) as error:
        served.predict(None, frame)
    message = str(error.value)
    for expected in (
        "row 0 (index 0): timeseries has shape (3, 17); expected (hours >= 1, 34)",
        "row 1 (index 1): no timeseries",
        f"row 2 (index 2): image has shape ({IMAGE + 1}, {IMAGE})",
        "row 3 (index 3): length 99 is outside [1, 3]",
    ):
        assert expected in message
    bright = stays(1, paired=[True]).assign(image=[np.full((IMAGE, IMAGE), 300)])
    with pytest.raises(StayInputError, match=r"integers in \[0, 255\]"):
        served.predict(None, bright)
    with pytest.raises(StayInputError, match="needs a 'timeseries' column"):
        served.predict(None, pd.DataFrame({"series": [1]}))


def test_a_one_hot_student_is_rebuilt_at_its_width_and_refuses_another(tmp_path: Path) -> None:
    card = student_card(encoding="one_hot")  # trained on a 59-column store
    assert card["ehr_encoder"]["settings"]["in_channels"] == 59
    assert card["ehr_input"]["encoding"] == "one_hot" and len(card["ehr_input"]["features"]) == 59
    weights = trained_weights(card, seed=2)
    save_student(tmp_path / "student", StudentPyfunc(card, weights))
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "student"))
    assert loaded.unwrap_python_model().model.ehr_encoder.in_channels == 59

    frame = stays(4, paired=[True, False, True, False], channels=59)
    out = loaded.predict(frame)
    reference = _reference(card, weights)
    for i, row in frame.iterrows():
        expected = _head(reference, row, out.loc[i, "head"])
        assert out.loc[i, "y"] == pytest.approx(expected, abs=1e-6), i
    info = mlflow.models.Model.load(str(tmp_path / "student"))
    example = info.load_input_example(str(tmp_path / "student"))
    assert np.asarray(example.loc[0, "timeseries"]).shape == (2, 59)
    assert list(loaded.predict(example)["head"]) == ["ehr"]

    continuous = stays(12, paired=[False] * 12)  # a store of the continuous encoding: 34 columns
    with pytest.raises(StayInputError) as error:
        loaded.predict(continuous)
    message = str(error.value)
    assert "row 0 (index 0): timeseries has shape (6, 34); expected (hours >= 1, 59)" in message
    assert "the model takes 59 columns per hour" in message
    assert message.endswith("; and 2 more")  # 12 rows of the wrong width: 10 listed
