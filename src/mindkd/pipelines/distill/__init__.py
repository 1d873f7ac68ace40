"""``distill``: the MIND student and its baselines trained on cached teacher targets, evaluated."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
