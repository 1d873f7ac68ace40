"""TorchStateDictDataset: symmetric round trips, versions, factories, safe loading; the weights digest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog
from kedro.io.core import DatasetError, Version

from mindkd.io.torch_state import TorchStateDictDataset, state_dict_sha256


class _Payload:
    """Stands for any pickled object a state-dict file must not run on load."""


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    return model.state_dict()


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name
        assert tensor.dtype == b[name].dtype


def test_round_trip_gives_back_the_same_tensors(tmp_path: Path) -> None:
    state = _state(0)
    dataset = TorchStateDictDataset(filepath=str(tmp_path / "model" / "weights.pt"))
    assert not dataset.exists()
    dataset.save(state)
    assert dataset.exists()
    loaded = dataset.load()
    _assert_equal(loaded, state)
    assert loaded["1.num_batches_tracked"].dtype == torch.int64
    assert all(t.device.type == "cpu" for t in loaded.values())


def test_two_versions_load_separately(tmp_path: Path) -> None:
    path = str(tmp_path / "weights.pt")
    first, second = _state(0), _state(1)
    TorchStateDictDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(
        first
    )
    TorchStateDictDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(
        second
    )

    assert sorted(p.name for p in (tmp_path / "weights.pt").iterdir()) == [
        "2026-01-01T00.00.00.000Z",
        "2026-01-02T00.00.00.000Z",
    ]
    old = TorchStateDictDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None))
    _assert_equal(old.load(), first)
    latest = TorchStateDictDataset(filepath=path, version=Version(None, None))
    _assert_equal(latest.load(), second)
    assert not torch.equal(first["0.weight"], second["0.weight"])


def test_catalog_factory_with_versioning(tmp_path: Path) -> None:
    catalog = DataCatalog.from_config(
        {
            "{task}.teacher_{member}.weights": {
                "type": "mindkd.io.torch_state.TorchStateDictDataset",
                "filepath": str(tmp_path / "{task}" / "{member}" / "weights.pt"),
                "versioned": True,
            }
        },
        save_version="2026-03-04T05.06.07.890Z",
    )
    state = _state(2)
    catalog.save("ihm.teacher_lstm_small.weights", state)

    written = tmp_path / "ihm" / "lstm_small" / "weights.pt" / "2026-03-04T05.06.07.890Z"
    assert (written / "weights.pt").is_file()
    _assert_equal(catalog.load("ihm.teacher_lstm_small.weights"), state)


def test_refuses_a_module_and_does_not_unpickle_objects(tmp_path: Path) -> None:
    dataset = TorchStateDictDataset(filepath=str(tmp_path / "w.pt"))
    with pytest.raises(DatasetError, match="not the module"):
        dataset.save(torch.nn.Linear(2, 2))  # type: ignore[arg-type]

    torch.save({"x": _Payload()}, tmp_path / "w.pt")  # an arbitrary object: weights_only refuses it
    with pytest.raises(DatasetError, match="Weights only load failed"):
        dataset.load()


def test_weights_digest_follows_values_not_storage() -> None:
    state = _state(0)
    copy = {k: v.clone() for k, v in state.items()}
    assert state_dict_sha256(state) == state_dict_sha256(copy)
    assert state_dict_sha256(state) == state_dict_sha256(dict(reversed(list(copy.items()))))
    copy["0.bias"][0] += 1e-6
    assert state_dict_sha256(state) != state_dict_sha256(copy)
    renamed = {("x" + k): v for k, v in state.items()}
    assert state_dict_sha256(state) != state_dict_sha256(renamed)
