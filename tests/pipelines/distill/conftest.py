"""Distill tests run torch on one thread (tiny inputs; the CPU here is shared)."""

from __future__ import annotations

import pytest
from distill_data import DistillInputs, make_inputs

from torch_threads import one_torch_thread  # noqa: F401 - autouse fixture for this folder


@pytest.fixture(scope="module")
def inputs() -> DistillInputs:
    return make_inputs()
