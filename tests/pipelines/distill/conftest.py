"""Distill tests run torch on one thread (tiny inputs; the CPU here is shared)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from distill_data import DistillInputs, make_inputs


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs() -> DistillInputs:
    return make_inputs()
