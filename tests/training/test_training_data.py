"""MultiModalDataset, collate_multimodal and make_loader: indices, truncation, normalisation, order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mindkd.training import (
    DatasetSpecError,
    MultiModalDataset,
    SampleTable,
    collate_multimodal,
    make_loader,
)

NAN = np.nan


def small_dataset(root: Path | None = None) -> MultiModalDataset:
    """4 samples: 0 paired (EHR row 2, image 1), 1 EHR only (row 1), 2 CXR only (image 0), 3 EHR
    only (row 0)."""
    values = np.zeros((3, 5, 4), dtype=np.float32)
    for row in range(3):
        values[row] = 100 * row + np.arange(5, dtype=np.float32)[:, None]  # value = 100·row + hour
    lengths = np.array([5, 2, 3])
    images = np.stack([np.full((4, 4), 51, np.uint8), np.full((4, 4), 204, np.uint8)])
    if root is not None:  # read through memory maps, as in training
        np.save(root / "values.npy", values)
        np.save(root / "images.npy", images)
        values = np.load(root / "values.npy", mmap_mode="r")
        images = np.load(root / "images.npy", mmap_mode="r")
    table = SampleTable(
        ehr_row=np.array([2, 1, -1, 0]),
        cxr_row=np.array([1, -1, 0, -1]),
        labels=np.array([[1, 0], [0, NAN], [1, 1], [0, 0]], dtype=np.float32),
        teacher={
            "ehr": np.array([[1, 1], [2, 2], [NAN, NAN], [3, 3]], dtype=np.float32),
            "cxr": np.array([[4, 4], [NAN, NAN], [5, 5], [NAN, NAN]], dtype=np.float32),
        },
        keys=np.array([10, 11, 12, 13]),
    )
    return MultiModalDataset(
        table, ehr_values=values, ehr_lengths=lengths, images=images, image_mean=0.5, image_std=0.25
    )


def test_collate_builds_indices_for_a_mixed_batch(tmp_path: Path) -> None:
    dataset = small_dataset(tmp_path)
    assert dataset.kinds().to_dict() == {"paired": 1, "ehr_only": 2, "cxr_only": 1}
    batch, targets = collate_multimodal(dataset.__getitems__([0, 1, 2, 3]))
    assert batch.size == 4
    assert batch.ehr_index.tolist() == [0, 1, 3]
    assert batch.cxr_index.tolist() == [0, 2]
    assert batch.ehr_lengths.tolist() == [3, 2, 5]
    assert batch.ehr.shape == (3, 5, 4)  # the longest sample (EHR row 0) has 5 hours
    # sample 0 = EHR row 2, 3 hours: 200, 201, 202 then zero padding
    assert batch.ehr[0, :, 0].tolist() == [200.0, 201.0, 202.0, 0.0, 0.0]
    assert batch.ehr[1, :, 0].tolist() == [100.0, 101.0, 0.0, 0.0, 0.0]
    assert batch.ehr[2, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    # images: (v / 255 − .5) / .25 -> image 1 (204) = 1.2 for sample 0, image 0 (51) = −1.2 for sample 2
    assert batch.cxr.shape == (2, 1, 4, 4)
    torch.testing.assert_close(batch.cxr[:, 0, 0, 0], torch.tensor([1.2, -1.2]))
    assert batch.cxr.dtype == torch.float32
    assert targets["position"].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(
        targets["labels"], torch.tensor([[1, 0], [0, NAN], [1, 1], [0, 0]]), equal_nan=True
    )
    assert targets["teacher"]["ehr"][:, 0].tolist()[:2] == [1.0, 2.0]
    assert torch.isnan(targets["teacher"]["cxr"][1]).all()


def test_collate_truncates_time_to_the_batch_and_leaves_absent_modalities_out() -> None:
    dataset = small_dataset()
    batch, _ = collate_multimodal(dataset.__getitems__([1, 0]))
    assert batch.ehr.shape == (2, 3, 4)  # lengths 2 and 3: truncated to 3 of the stored 5 hours
    assert batch.ehr_index.tolist() == [0, 1]
    assert batch.cxr_index.tolist() == [1]
    ehr_only, _ = collate_multimodal([dataset[3], dataset[1]])
    assert ehr_only.cxr is None and ehr_only.cxr_index is None
    cxr_only, targets = collate_multimodal([dataset[2]])
    assert cxr_only.ehr is None and cxr_only.ehr_lengths is None
    assert cxr_only.cxr_index.tolist() == [0]
    assert targets["position"].tolist() == [2]


def test_loader_order_is_seeded_per_epoch() -> None:
    dataset = small_dataset()

    def epoch_orders(seed: int) -> list[list[int]]:
        loader = make_loader(dataset, batch_size=4, shuffle=True, seed=seed)
        return [next(iter(loader))[1]["position"].tolist() for _ in range(4)]

    first = epoch_orders(0)
    assert first == epoch_orders(0)
    assert len({tuple(o) for o in first}) > 1  # a new order each epoch
    assert all(sorted(o) == [0, 1, 2, 3] for o in first)
    loader = make_loader(dataset, batch_size=4, shuffle=True, seed=0)
    loader.sampler.set_epoch(2)  # type: ignore[attr-defined]
    assert next(iter(loader))[1]["position"].tolist() == first[2]
    plain = make_loader(dataset, batch_size=3, shuffle=False)
    assert [t["position"].tolist() for _, t in plain] == [[0, 1, 2], [3]]


def test_inconsistent_inputs_are_reported_together() -> None:
    table = SampleTable(
        ehr_row=np.array([0, -1, 5]),
        cxr_row=np.array([-1, -1, 0]),
        labels=np.zeros((3, 1), dtype=np.float32),
        teacher={"txt": np.zeros((3, 1), dtype=np.float32)},
    )
    with pytest.raises(DatasetSpecError) as excinfo:
        MultiModalDataset(
            table,
            ehr_values=np.zeros((2, 4, 2), np.float32),
            ehr_lengths=np.array([1, 9]),
            images=np.zeros((1, 4, 4), np.float32),
        )
    message = str(excinfo.value)
    for problem in (
        "1 samples have no modality",
        "ehr_lengths outside [1, 4]",
        "ehr_row values beyond the 2 EHR rows",
        "images must be (N_i, S, S) uint8",
        "teacher modality 'txt'",
    ):
        assert problem in message
