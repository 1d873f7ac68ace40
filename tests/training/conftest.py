"""Training tests run torch on one thread, restored afterwards (tiny inputs; busy CPUs)."""

from __future__ import annotations

from torch_threads import one_torch_thread  # noqa: F401 - autouse fixture for this folder
