"""Typed parameters of the ``ehr`` pipeline (``parameters_ehr.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mindkd.processing.splits import validate_fractions
from mindkd.tasks import get_task


class EhrParams(BaseModel):
    """Streaming ingestion and cleaning (key ``ehr``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_buckets: int = Field(
        32, ge=1, description="minimum stay buckets; raised to one per 8 MiB of gzip input"
    )
    clean_workers: int | None = Field(None, ge=1, description="buckets cleaned at once")
    scratch_dir: str | None = Field(None, description="temporary tensor files; null = TMPDIR")


class SplitParams(BaseModel):
    """Subject-level splits shared by both modalities (key ``split``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)

    @field_validator("fractions")
    @classmethod
    def _valid(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return validate_fractions(value)


class TaskParams(BaseModel):
    """What defines a task's cohort and inputs (key ``<task>.task``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    max_hours: int | None = Field(None, ge=1, description="cap of whole-stay inputs (pheno)")
    label_source: Literal["deathtime", "hospital_expire_flag"] = "deathtime"
    require_events: bool = False

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        get_task(value)
        return value
