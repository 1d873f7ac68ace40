"""One torch thread for a test folder: import ``one_torch_thread`` into its conftest.py.

The test inputs are tiny; on a busy CPU torch's worker threads spin against other processes and the same
tests take ten times longer. The previous thread count is restored after each module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
