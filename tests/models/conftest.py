"""Model tests run torch on one thread, restored afterwards.

The inputs are tiny; on a busy CPU torch's worker threads spin against other processes and the same
tests take ten times longer.
"""

from __future__ import annotations

from torch_threads import one_torch_thread  # noqa: F401 - autouse fixture for this folder
