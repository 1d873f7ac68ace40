"""Synthetic MIMIC-IV + MIMIC-CXR-JPG generator in the exact PhysioNet layout.

``generate(out_dir, DemoConfig(...)) -> Manifest`` or ``python -m mindkd.demo OUT_DIR``. The export
carries learnable signal in both modalities (``latent.py``) and counted defects (``manifest.json``).
See ``README.md`` in this folder.

The generator is imported on first use, so the JPEG worker processes (``images.py``) start
without pandas and pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mindkd.demo.config import DemoConfig, DemoConfigError

if TYPE_CHECKING:
    from mindkd.demo.generator import Manifest, generate

__all__ = ["DemoConfig", "DemoConfigError", "Manifest", "generate"]


def __getattr__(name: str) -> Any:
    if name in {"Manifest", "generate"}:
        from mindkd.demo import generator

        return getattr(generator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
