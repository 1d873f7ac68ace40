"""``ehr``: MIMIC-IV events to cleaned hourly ICU time series, cohorts and labels per task."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
