"""Seeding, the deterministic() context, device resolution and moving nested targets."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from mindkd.models import MultiModalBatch
from mindkd.training import deterministic, resolve_device, seed_everything, to_device


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))  # noqa: NPY002


def test_seed_everything_repeats_every_generator() -> None:
    seed_everything(3)
    first = draws()
    seed_everything(3)
    assert draws() == first
    seed_everything(4)
    assert draws() != first
    with pytest.raises(ValueError, match="config key `seed`"):
        seed_everything(-1)


def test_deterministic_context_sets_and_restores_torch_settings() -> None:
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    after = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    assert after == before
    with deterministic(enabled=False):
        assert torch.are_deterministic_algorithms_enabled() == before[0]


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="config key `device`"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_to_device_moves_nested_targets_and_batches() -> None:
    batch = MultiModalBatch(size=1, cxr=torch.zeros(1, 1, 2, 2), cxr_index=torch.tensor([0]))
    tree = {
        "labels": torch.ones(1, 1),
        "teacher": {"ehr": torch.zeros(1, 1)},
        "batch": batch,
        "n": 3,
    }
    moved = to_device(tree, "cpu")
    assert moved["teacher"]["ehr"].device.type == "cpu"
    assert isinstance(moved["batch"], MultiModalBatch) and moved["n"] == 3
