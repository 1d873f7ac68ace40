"""Seeding and deterministic execution, applied explicitly (never at import).

``seed_everything(seed)`` seeds Python's ``random``, NumPy's legacy global generator and torch (CPU and
every CUDA device). ``deterministic()`` is a context manager that asks torch for deterministic kernels
(``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN deterministic, no cuDNN benchmark)
and restores the previous settings on exit. On the CPU a seeded run under ``deterministic()`` repeats bit
for bit; on CUDA the few kernels without a deterministic variant warn instead of failing.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

logger = logging.getLogger(__name__)

_CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy.random`` and torch (all devices) with ``seed``."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed} (config key `seed`)")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what third-party code reads
    torch.manual_seed(seed)  # also seeds every CUDA device
    logger.debug("seeded random, numpy and torch with %d", seed)


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Run the block with torch's deterministic algorithms (warn-only) and deterministic cuDNN.

    With ``enabled=False`` the block runs with the current settings. The previous settings, and the
    ``CUBLAS_WORKSPACE_CONFIG`` environment variable that deterministic cuBLAS needs, are restored on exit.
    """
    if not enabled:
        yield
        return
    was_enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn_deterministic = torch.backends.cudnn.deterministic
    cudnn_benchmark = torch.backends.cudnn.benchmark
    cublas_env = os.environ.get(_CUBLAS_ENV)
    if cublas_env is None:
        os.environ[_CUBLAS_ENV] = ":4096:8"
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_enabled, warn_only=was_warn_only)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if cublas_env is None:
            os.environ.pop(_CUBLAS_ENV, None)
