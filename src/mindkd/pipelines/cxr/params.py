"""Typed parameters of the ``cxr`` pipeline (``parameters_cxr.yml``, key ``cxr``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CxrParams(BaseModel):
    """Which images are used, how they are decoded, and how their labels are read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    views: tuple[str, ...] = ("AP",)
    image_size: int = Field(64, ge=16, le=1024, description="store side in px: 224 for real data")
    workers: int | None = Field(None, ge=1, description="decode processes; null = all cores")
    max_failed_fraction: float = Field(0.01, ge=0.0, le=1.0)
    scratch_dir: str | None = Field(None, description="temporary pixel file; null = TMPDIR")
    label_source: Literal["chexpert", "negbio"] = "chexpert"
    uncertain_policy: Literal["zeros", "ones", "ignore"] = "zeros"
    blank_as_negative: bool = False
