"""Typed parameters of the ``ehr`` pipeline (``parameters_ehr.yml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mindkd.mimic.variables import (
    DEFAULT_RANGE_PROFILE,
    SLOW_VARIABLES,
    CategoricalEncoding,
    RangeProfile,
)
from mindkd.processing.ingest import Lookback
from mindkd.processing.slicing import DEFAULT_SLICE_ROWS
from mindkd.processing.splits import validate_fractions


class EhrParams(BaseModel):
    """Streaming ingestion and cleaning, and the encoding of the model input (key ``ehr``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_buckets: int = Field(
        32, ge=1, description="minimum stay buckets; raised to one per 8 MiB of gzip input"
    )
    clean_workers: int | None = Field(None, ge=1, description="buckets cleaned at once")
    slice_rows: int = Field(
        DEFAULT_SLICE_ROWS,
        ge=1,
        description="events of one bucket held at once by cleaning, cohort and tensors; a larger "
        "bucket (a stay with millions of events) is read in slices, with the same result",
    )
    scratch_dir: str | None = Field(None, description="temporary tensor files; null = TMPDIR")
    ranges: RangeProfile = Field(
        DEFAULT_RANGE_PROFILE,
        description="plausible ranges: mindkd (evidence from real MIMIC-IV, docs/variables.md) "
        "| mimic3_benchmarks (as published work)",
    )
    lookback_hours: float = Field(
        24.0,
        ge=0,
        description="slow variables charted this long before intime (same admission) count "
        "as observed in hour 0; 0 = off",
    )
    lookback_variables: tuple[str, ...] = Field(
        SLOW_VARIABLES, description="the variables the look-back applies to"
    )
    categorical: CategoricalEncoding = Field(
        description="GCS and capillary refill in the model input: continuous (standardised like "
        "every variable) | one_hot (one 0/1 column per category, as mimic3-benchmarks and MedFuse). "
        "No default here: conf/base/parameters_ehr.yml holds the project's, in one line",
    )

    @field_validator("lookback_variables")
    @classmethod
    def _known_variables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        Lookback(variables=value)  # names the unknown variable(s) and the known ones
        return value

    @property
    def lookback(self) -> Lookback:
        return Lookback(self.lookback_hours, self.lookback_variables)


class SplitParams(BaseModel):
    """Subject-level splits shared by both modalities (key ``split``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)

    @field_validator("fractions")
    @classmethod
    def _valid(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        return validate_fractions(value)
