"""Fixtures of the teacher tests: the synthetic inputs (``teacher_data``) and one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from teacher_data import TeacherInputs, make_inputs


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inputs() -> TeacherInputs:
    return make_inputs()
