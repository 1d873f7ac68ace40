"""Fixtures of the teacher tests: the synthetic inputs (``teacher_data``) and one torch thread."""

from __future__ import annotations

import pytest
from teacher_data import TeacherInputs, make_inputs

from torch_threads import one_torch_thread  # noqa: F401 - autouse fixture for this folder


@pytest.fixture(scope="module")
def inputs() -> TeacherInputs:
    return make_inputs()
